/* Signoff's keyboard shortcuts, and what a page needs after htmx swaps it in (hx-boost).

   Loaded with `defer` from base.html: the Content-Security-Policy allows no inline script, so
   everything the pages do in the browser lives here. Every shortcut presses a button or follows
   a link that is on the page anyway, so nothing here is needed to review without a keyboard.

   Queue:      j / k select the next / previous row (skipping rows taken meanwhile), Enter opens
               it, n claims the next item. Every 15 seconds the rows someone else decided or
               claimed since the page loaded are marked "Taken".
   Suggestion: a approves, e edits, r and x open the reject and escalate forms at their reason,
               n claims the next item.
   A reason:   Ctrl+Enter (Cmd+Enter) sends its form.
   Anywhere:   ? shows or hides the list of keys (<dialog id="keys-help">).
*/
(function () {
  "use strict";

  let busy = false;

  function isTyping(target) {
    if (!(target instanceof Element)) {
      return false;
    }
    return target.isContentEditable || target.matches("input, textarea, select");
  }

  function usable(element) {
    return element !== null && !element.closest("fieldset[disabled]");
  }

  function submitForm(form) {
    if (!usable(form)) {
      return false;
    }
    const button = form.querySelector("button[type='submit']:not([disabled]), button:not([type]):not([disabled])");
    // requestSubmit fires the submit event, so htmx takes the request over and the form's own
    // validation runs, as when the button is pressed.
    form.requestSubmit(button);
    return true;
  }

  // --- Queue: j / k / Enter ------------------------------------------------------------------

  function queueRows() {
    return Array.from(document.querySelectorAll("tr[data-review-url]"));
  }

  function selectedIndex(rows) {
    return rows.findIndex((row) => row.getAttribute("aria-selected") === "true");
  }

  function selectRow(rows, index) {
    rows.forEach((row, position) => {
      row.setAttribute("aria-selected", position === index ? "true" : "false");
    });
    const row = rows[index];
    row.tabIndex = -1;
    row.focus();
  }

  function isTaken(row) {
    return row.classList.contains("queue-row--taken");
  }

  function moveSelection(step) {
    const rows = queueRows();
    if (rows.length === 0) {
      return false;
    }
    const current = selectedIndex(rows);
    let next = current === -1 ? (step > 0 ? 0 : rows.length - 1) : current + step;
    while (next >= 0 && next < rows.length && isTaken(rows[next])) {
      next += step;
    }
    if (next < 0 || next >= rows.length) {
      // Nothing free that way: stay where we are, or on the first row if none is selected yet.
      if (current !== -1) {
        return true;
      }
      next = 0;
    }
    selectRow(rows, next);
    return true;
  }

  // --- Queue: rows taken since the page loaded --------------------------------------------------

  const TAKEN_POLL_MS = 15000;
  let takenPolling = false;

  function markTaken(row, reason) {
    if (isTaken(row)) {
      return;
    }
    row.classList.add("queue-row--taken");
    const label = document.createElement("span");
    label.className = "queue-row__taken";
    label.textContent = `Taken: ${reason}`;
    const cell = row.querySelector(".queue-row__status") || row.lastElementChild;
    if (cell) {
      cell.append(" ", label);
    }
  }

  async function pollTaken() {
    const table = document.querySelector("table[data-queue-taken-url]");
    if (takenPolling || !table || document.hidden) {
      return;
    }
    const rows = Array.from(table.querySelectorAll("tr.queue-row[data-suggestion-id]")).filter(
      (row) => !isTaken(row),
    );
    if (rows.length === 0) {
      return;
    }
    const url = new URL(table.dataset.queueTakenUrl, window.location.href);
    url.searchParams.set("ids", rows.map((row) => row.dataset.suggestionId).join(","));
    takenPolling = true;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok || !(response.headers.get("Content-Type") || "").includes("application/json")) {
        return;
      }
      const taken = (await response.json()).taken || {};
      rows.forEach((row) => {
        const reason = taken[row.dataset.suggestionId];
        if (typeof reason === "string") {
          markTaken(row, reason);
        }
      });
    } catch (error) {
      // Offline or signed out: the next tick tries again.
    } finally {
      takenPolling = false;
    }
  }

  window.setInterval(pollTaken, TAKEN_POLL_MS);

  function openSelected(target) {
    const rows = queueRows();
    const row = rows[selectedIndex(rows)];
    // Enter on a link or a button keeps its own meaning.
    if (!row || (target instanceof Element && target !== row && target.closest("a, button, summary"))) {
      return false;
    }
    const url = row.dataset.reviewUrl;
    const link = Array.from(row.querySelectorAll("a[href]")).find((a) => a.getAttribute("href") === url);
    if (link) {
      link.click();
    } else {
      window.location.assign(url);
    }
    return true;
  }

  // --- A suggestion: a / e / r / x ------------------------------------------------------------

  function openReason(detailsId, reasonId) {
    const details = document.getElementById(detailsId);
    const reason = document.getElementById(reasonId);
    if (!usable(details) || !usable(reason)) {
      return false;
    }
    details.open = true;
    reason.focus();
    return true;
  }

  function followLink(id) {
    const link = document.getElementById(id);
    if (!usable(link)) {
      return false;
    }
    link.click();
    return true;
  }

  // --- The list of keys ------------------------------------------------------------------------

  function helpDialog() {
    return document.getElementById("keys-help");
  }

  function toggleHelp() {
    const dialog = helpDialog();
    if (!dialog) {
      return false;
    }
    if (dialog.open) {
      dialog.close();
    } else {
      dialog.showModal();
    }
    return true;
  }

  const actions = {
    j: () => moveSelection(1),
    k: () => moveSelection(-1),
    n: () => submitForm(document.getElementById("claim-next-form")),
    a: () => submitForm(document.getElementById("approve-form")),
    e: () => followLink("edit-link"),
    r: () => openReason("reject-details", "reject-reason"),
    x: () => openReason("escalate-details", "escalate-reason"),
  };
  // Keys that send a request: not repeated while a key is held, nor while a request is on its way.
  const sends = new Set(["n", "a", "e"]);

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) {
      return;
    }
    const target = event.target;

    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.altKey) {
      if (target instanceof HTMLTextAreaElement && target.form && !busy && submitForm(target.form)) {
        event.preventDefault();
      }
      return;
    }
    // Shift is part of some keys ("?"); any other modifier means a browser or system shortcut.
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(target)) {
      return;
    }

    const dialog = helpDialog();
    if (event.key === "?") {
      if (toggleHelp()) {
        event.preventDefault();
      }
      return;
    }
    if (dialog && dialog.open) {
      return;
    }

    if (event.key === "Enter") {
      if (openSelected(target)) {
        event.preventDefault();
      }
      return;
    }
    if (event.shiftKey) {
      return;
    }
    const key = event.key.toLowerCase();
    const action = actions[key];
    if (!action) {
      return;
    }
    if (sends.has(key) && (event.repeat || busy)) {
      event.preventDefault();
      return;
    }
    if (action()) {
      event.preventDefault();
    }
  });

  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest("[data-keys-help]")) {
      toggleHelp();
    }
  });

  // --- After htmx swapped a page in -------------------------------------------------------------

  function revealHelpButton() {
    document.querySelectorAll("[data-keys-help]").forEach((button) => {
      button.hidden = false;
    });
  }

  // As after a full page load, a screen reader starts at the new page: at its first field with
  // an error, else at its main heading.
  function focusNewPage() {
    const main = document.getElementById("main");
    if (!main) {
      return;
    }
    const invalid = main.querySelector("[aria-invalid='true']");
    if (invalid) {
      invalid.focus();
      return;
    }
    const heading = main.querySelector("h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }

  // A page that answers with an error (404, 403, 500) is shown, as a full page load would show
  // it; htmx would otherwise leave the old page in place without a word.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.boosted && event.detail.xhr.status >= 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  // Only page changes count: the queue's counts refresh in the background meanwhile.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.boosted) {
      busy = true;
    }
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.boosted) {
      busy = false;
    }
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail && event.detail.boosted) {
      revealHelpButton();
      focusNewPage();
    }
  });

  revealHelpButton();
})();
