"""The WSGI entry point that gunicorn loads in every web process."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_the_web_process_loads_its_views_and_freezes_them_out_of_the_collectors_sight():
    """A full garbage collection would otherwise walk every object loaded at startup: a
    pause of tens of milliseconds on whichever requests are waiting."""
    code = (
        "import gc, sys; import config.wsgi; from django.conf import settings;"
        "print(settings.ROOT_URLCONF in sys.modules, 'reviews.api' in sys.modules,"
        " gc.get_freeze_count(), len(gc.get_objects()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    urlconf_loaded, views_loaded, frozen, tracked = result.stdout.split()
    assert urlconf_loaded == views_loaded == "True"
    assert int(frozen) > 50_000
    assert int(tracked) < int(frozen) // 10
