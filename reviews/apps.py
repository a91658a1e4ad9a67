from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        # Importing the tasks validates them against the configured TASKS backend at start-up.
        from reviews import tasks  # noqa: F401
