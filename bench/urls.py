"""Signoff's URLs plus the benchmarks' floor endpoints, which production never serves."""

from django.urls import path

from bench.floor import FloorBatchApi, FloorSubmitApi
from config.urls import urlpatterns as signoff_urlpatterns

urlpatterns = [
    path("bench/floor/", FloorSubmitApi.as_view()),
    path("bench/floor/batch/", FloorBatchApi.as_view()),
    *signoff_urlpatterns,
]
