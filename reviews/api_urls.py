"""The REST API's URLs, mounted at /api/v1/: suggestions, the OpenAPI schema and its docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from reviews.api import SuggestionDetailApi, SuggestionListCreateApi, endpoint_not_found

urlpatterns = [
    path("suggestions/", SuggestionListCreateApi.as_view(), name="suggestion-list"),
    path(
        "suggestions/<str:suggestion_id>/",
        SuggestionDetailApi.as_view(),
        name="suggestion-detail",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # Last: everything else under /api/v1/ answers 404 as JSON.
    re_path(r"", endpoint_not_found, name="api-not-found"),
]
