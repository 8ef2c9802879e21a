// ragserve console: keyboard shortcuts, lease renewal, live metrics, confirmations.
// Served from /admin/static (the page's CSP allows no inline script).
"use strict";

(function () {
  const csrf = document.body.dataset.csrf || "";

  function post(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "X-Requested-With": "console", "Accept": "application/json" },
    });
  }

  function typing(target) {
    const tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function submit(id) {
    const form = document.getElementById(id);
    if (form) {
      form.requestSubmit();
      return true;
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      if (submit("label-form")) event.preventDefault();
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const dialog = document.getElementById("shortcuts");
    if (event.key === "?") {
      if (dialog && !dialog.open) dialog.showModal();
      event.preventDefault();
      return;
    }
    if (/^[1-9]$/.test(event.key)) {
      const box = document.querySelector('#label-form input[data-key="' + event.key + '"]');
      if (box) {
        box.checked = !box.checked;
        event.preventDefault();
      }
      return;
    }
    if (event.key === "c") {
      const answer = document.getElementById("corrected-answer");
      if (answer) {
        answer.focus();
        event.preventDefault();
      }
    } else if (event.key === "s") {
      if (submit("skip-form")) event.preventDefault();
    } else if (event.key === "n") {
      if (submit("next-form")) event.preventDefault();
    }
  });

  // A leased task stays leased while its page is open.
  const leased = document.querySelector("[data-lease-url]");
  if (leased) {
    const every = Math.max(5000, Number(leased.dataset.leaseMs) / 3);
    const state = document.getElementById("task-state");
    const timer = setInterval(function () {
      post(leased.dataset.leaseUrl).then(function (response) {
        if (!response.ok) {
          clearInterval(timer);
          if (state) state.textContent = "Your lease on this task ended; reload to see who holds it.";
        }
      });
    }, every);
  }

  // Server-drawn charts, refreshed without reloading the page.
  document.querySelectorAll("[data-refresh-url]").forEach(function (panel) {
    const every = Number(panel.dataset.refreshMs) || 10000;
    setInterval(function () {
      fetch(panel.dataset.refreshUrl, { credentials: "same-origin", headers: { "X-Requested-With": "console" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html !== null) {
            panel.innerHTML = html;
            panel.dataset.refreshedAt = String(Date.now());
          }
        });
    }, every);
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
