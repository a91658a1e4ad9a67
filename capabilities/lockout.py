"""Brute-force protection of the password login: the hooks django-axes calls.

django-axes counts failed password logins per username and client address and, once a pair
reaches ``AXES_FAILURE_LIMIT``, refuses it (the right password included) until
``AXES_COOLOFF_TIME`` has passed; see the settings. This module tells it where a request comes
from (``client_ip_address``), which attempts are none of its business (``attempt_is_exempt``)
and what a locked-out request gets back (``lockout_response``), which is also where a lockout is
recorded in the audit trail: in the request that causes it, not from a signal.
"""

import datetime as dt
import ipaddress
import math
from http import HTTPStatus
from typing import Any

from axes.helpers import get_client_parameters, get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.models import AuditAction
from audit.services import Actor, Subject, audit_event_record

LOCKOUT_TEMPLATE = "registration/locked_out.html"


def client_ip_address(request: HttpRequest) -> str | None:
    """The address a login comes from: ``REMOTE_ADDR``, or, behind
    ``SIGNOFF_TRUSTED_PROXY_COUNT`` proxies, the address the outermost of them saw.

    Each trusted proxy appends the address it received the request from to X-Forwarded-For, so
    the client is that many entries from the right; whatever stands further left came from the
    client and proves nothing. A malformed entry falls back to ``REMOTE_ADDR``.
    """
    remote_addr: str | None = request.META.get("REMOTE_ADDR")
    proxies = settings.SIGNOFF_TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote_addr
    forwarded = [
        entry.strip()
        for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if entry.strip()
    ]
    if len(forwarded) < proxies:
        return remote_addr
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote_addr


def attempt_is_exempt(request: HttpRequest, credentials: dict[str, Any] | None) -> bool:
    """Whether django-axes should neither count nor refuse this attempt: one without a
    username.

    Only password logins carry a username. A single sign-on callback carries none: the identity
    provider checked the person's credentials and guards them against guessing itself. A form
    without a username never reaches the password check, so exempting it lets nothing through.
    """
    return not get_client_username(request, credentials)


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None,
    credentials: dict[str, Any] | None,
) -> HttpResponse:
    """The page a locked-out login gets (429, with Retry-After when the lockout ends by
    itself), recording the lockout in the audit trail when this request caused it.

    django-axes calls this for the attempt that reaches the failure limit and for every attempt
    refused afterwards. Only the first counted a failure (``axes_failures_since_start``): later
    ones are refused before they are counted (``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT``
    is off), so each lockout is recorded once.
    """
    username = get_client_username(request, credentials) or ""
    ip_address = getattr(request, "axes_ip_address", None) or ""
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is not None:
        login_lockout_record(username=username, ip_address=ip_address, failures=failures)

    retry_at = _retry_at(request, credentials, username=username, ip_address=ip_address)
    response = render(
        request,
        LOCKOUT_TEMPLATE,
        {
            "username": username,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "retry_at": retry_at,
        },
        status=HTTPStatus.TOO_MANY_REQUESTS,
    )
    if retry_at is not None:
        seconds = math.ceil((retry_at - timezone.now()).total_seconds())
        response["Retry-After"] = str(max(seconds, 1))
    return response


def login_lockout_record(*, username: str, ip_address: str, failures: int) -> None:
    """Record that ``username`` from ``ip_address`` was locked out after ``failures`` failed
    logins, as ``login.locked_out`` by the system actor ``axes``.

    The subject is the attempted username as typed, whether or not such a user exists: the
    trail names what was attacked without revealing who has an account.
    """
    with transaction.atomic():
        audit_event_record(
            actor=Actor.system("axes"),
            action=AuditAction.LOGIN_LOCKED_OUT,
            # Subject ids hold 64 characters; the data keeps the username whole.
            subject=Subject("user", username[:64]),
            data={"username": username, "ip_address": ip_address, "failures": failures},
        )


def _retry_at(
    request: HttpRequest, credentials: dict[str, Any] | None, *, username: str, ip_address: str
) -> dt.datetime | None:
    """When the lockout lifts: the cool-off after the failure that caused it; None when it
    lasts until an administrator resets it."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    # The same filters django-axes counts failures with (the lockout parameters).
    parameters = get_client_parameters(
        username, ip_address, getattr(request, "axes_user_agent", ""), request, credentials
    )
    matching = Q()
    for filters in parameters:
        matching |= Q(**filters)
    latest = AccessAttempt.objects.filter(matching).aggregate(latest=Max("attempt_time"))
    started: dt.datetime = latest["latest"] or timezone.now()
    return started + cool_off
