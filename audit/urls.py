"""The auditor's pages, mounted under /audit/."""

from django.urls import path

from audit import views

app_name = "audit"
urlpatterns = [
    path("", views.log, name="log"),
    path("export/", views.export, name="export"),
]
