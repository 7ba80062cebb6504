"""``python -m producer`` runs the tileclass CLI (used where the console script is not on PATH)."""

from producer.cli import main

if __name__ == "__main__":
    main()
