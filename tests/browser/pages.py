"""Helpers for the browser tests: watched pages, logging in, moving with the keyboard."""

import re
from dataclasses import dataclass, field

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page, expect

from tests.factories import PASSWORD

TIMEOUT_MS = 10_000
VIEWPORT = {"width": 1280, "height": 800}
# Also matched in the browser (expect(page).to_have_url), so JavaScript's regex syntax.
REVIEW_URL = re.compile(r"/suggestions/([0-9a-f-]{36})/$")
QUEUE_URL = re.compile(r"^https?://[^/]+/(\?.*)?$")


@dataclass
class Pages:
    """Opens pages, each in a browser context of its own (its own cookies, so its own user),
    at 1280x800 on the live server, and records what goes wrong on any of them: console
    errors, uncaught page errors, and dialogs (dismissed)."""

    browser: Browser
    base_url: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)
    # How many of ``errors`` have already failed the test.
    reported: int = 0
    _watched: set[int] = field(default_factory=set)

    def new(self) -> Page:
        context = self.browser.new_context(base_url=self.base_url, viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        # Pages the application opens itself (a new tab, a popup) are watched too.
        context.on("page", self._watch)
        page = context.new_page()
        self._watch(page)
        return page

    def _watch(self, page: Page) -> None:
        if id(page) in self._watched:
            return
        self._watched.add(id(page))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"console error on {page.url}: {message.text}")

        def on_page_error(error: Exception) -> None:
            self.errors.append(f"page error on {page.url}: {error}")

        def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{dialog.type} on {page.url}: {dialog.message}")
            dialog.dismiss()

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.on("dialog", on_dialog)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Log in through the login form and land on the queue."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(QUEUE_URL)


def tab_to(page: Page, selector: str, *, limit: int = 40) -> None:
    """Press Tab until the focused element matches ``selector``, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
    raise AssertionError(f"{limit} presses of Tab never reached {selector} on {page.url}")


def press_and_load(page: Page, key: str) -> None:
    """Press ``key`` and wait for the page it leads to (a form submitted, a link followed)."""
    with page.expect_navigation():
        page.keyboard.press(key)


def settled(page: Page) -> None:
    """Wait until htmx has no request, swap or settle in flight.

    A boosted page is swapped in, then settled, and only then does focus move to its heading:
    a key pressed before that would have its focus taken away again.
    """
    # A locator, not wait_for_function: the pages' Content-Security-Policy forbids the eval
    # that a predicate polled in the page would need.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def review_pk(page: Page) -> str:
    """The id of the suggestion whose review page ``page`` shows."""
    match = REVIEW_URL.search(page.url)
    assert match, f"not a review page: {page.url}"
    return match[1]


def fits_viewport(page: Page) -> bool:
    """Whether the page is no wider than the window: nothing forces a horizontal scroll."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
