from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Importing the tasks validates them against the configured TASKS backend at start-up.
        from audit import tasks  # noqa: F401
