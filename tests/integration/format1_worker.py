"""A worker as every tileclass worker before message format 2 was: it knows the classify task only by its format 1
name (``celery -A tests.integration.format1_worker worker``), so it stands for the old version in a mixed fleet."""

from core.celery_app import make_app
from core.messages import CLASSIFY_TASK_V1
from worker import tasks

app = make_app()
app.task(name=CLASSIFY_TASK_V1, bind=True, acks_late=True, shared=False)(tasks.classify_batch)
