"""Signoff's URLs: reviewer pages at /, the REST API under /api/v1/, the admin at /admin/, and
single sign-on under /oidc/ when it is configured."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Signoff admin"
admin.site.site_title = "Signoff"
admin.site.index_title = "Capabilities, policies and the audit trail"

urlpatterns = [
    path("", include("reviews.urls")),
    path("api/v1/", include("reviews.api_urls")),
    path("audit/", include("audit.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("favicon.ico", RedirectView.as_view(url=static("signoff/favicon.svg"), permanent=True)),
]
if settings.SIGNOFF_SSO_ENABLED:
    # /oidc/authenticate/ sends the browser to the identity provider; /oidc/callback/ takes it
    # back. Without them the login page shows no single sign-on link.
    urlpatterns.append(path("oidc/", include("mozilla_django_oidc.urls")))
