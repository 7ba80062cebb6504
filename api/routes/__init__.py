"""One router per resource, included by ``api.main``."""
