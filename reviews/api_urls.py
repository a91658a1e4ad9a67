"""The REST API's URLs, mounted at /api/v1/: suggestions (one at a time or in batches), the
OpenAPI schema and its docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from reviews.api import (
    SuggestionBatchApi,
    SuggestionDetailApi,
    SuggestionListCreateApi,
    endpoint_not_found,
)

urlpatterns = [
    path("suggestions/", SuggestionListCreateApi.as_view(), name="suggestion-list"),
    # Before the detail route, which would take "batch" for a suggestion's id.
    path("suggestions/batch/", SuggestionBatchApi.as_view(), name="suggestion-batch"),
    path(
        "suggestions/<str:suggestion_id>/",
        SuggestionDetailApi.as_view(),
        name="suggestion-detail",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from its own URL (?script) rather than
    # inline, so the docs page runs under the site's Content-Security-Policy unchanged.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", template_name="reviews/api_docs.html"
        ),
        name="docs",
    ),
    # Last: everything else under /api/v1/ answers 404 as JSON.
    re_path(r"", endpoint_not_found, name="api-not-found"),
]
