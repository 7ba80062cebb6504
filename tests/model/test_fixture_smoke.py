from pathlib import Path

from model.predict import Classifier


def test_trained_checkpoint_loads(trained_checkpoint: Path) -> None:
    classifier = Classifier.load(trained_checkpoint, device="cpu")
    assert classifier.class_names == ["Forest", "Highway", "Residential", "SeaLake"]
    assert trained_checkpoint.with_suffix(".json").is_file()
