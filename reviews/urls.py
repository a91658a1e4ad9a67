"""The reviewer's pages, mounted at the site root."""

from django.urls import path

from reviews import views

app_name = "reviews"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("queue/counts/", views.queue_counts_fragment, name="queue_counts"),
    path("queue/taken/", views.queue_taken, name="queue_taken"),
    path("claim-next/", views.claim_next, name="claim_next"),
    path("suggestions/<uuid:pk>/", views.review, name="review"),
    path("suggestions/<uuid:pk>/timeline/", views.timeline, name="timeline"),
    path("suggestions/<uuid:pk>/claim/", views.claim, name="claim"),
    path("suggestions/<uuid:pk>/release/", views.release, name="release"),
    path("suggestions/<uuid:pk>/approve/", views.approve, name="approve"),
    path("suggestions/<uuid:pk>/reject/", views.reject, name="reject"),
    path("suggestions/<uuid:pk>/escalate/", views.escalate, name="escalate"),
    path("suggestions/<uuid:pk>/edit/", views.edit, name="edit"),
    path("executions/failed/", views.failed_executions, name="failed_executions"),
    path("suggestions/<uuid:pk>/retry-execution/", views.retry_execution, name="retry_execution"),
    path("clients/retries/", views.submission_retries, name="submission_retries"),
]
