// Small behaviours on top of htmx: menus and dialogs close on Escape, outside
// clicks and Cancel; menu buttons tell assistive technology whether they are open;
// the keyboard works as in any menu and modal dialog (Space opens, arrows move, Tab
// stays in the dialog) and focus goes back to the menu button when they close.
(function () {
  "use strict";

  // The badge poll, once the server says something changed, posts what the page shows
  // ("id.version.workspaces,...", or "id.version" on a provider's page) so that the server
  // answers with only the rows that changed.
  function knownVersions() {
    var seen = {};
    document.querySelectorAll("[data-provider-id][data-version]").forEach(function (el) {
      var count = el.getAttribute("data-workspaces");
      seen[el.getAttribute("data-provider-id")] = el.getAttribute("data-version") +
        (count === null ? "" : "." + count);
    });
    return Object.keys(seen).map(function (id) { return id + "." + seen[id]; }).join(",");
  }

  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.hasAttribute("data-send-known-versions")) {
      event.detail.parameters.known = knownVersions();
    }
  });

  // "Last checked 2 minutes ago" stays true while the page is open: the server renders the
  // text once (rows are cached), the browser keeps it current from the datetime.
  function timeAgo(date) {
    var seconds = Math.floor((Date.now() - date.getTime()) / 1000);
    if (seconds < 5) return "just now";
    var units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var n = Math.floor(seconds / units[i][1]);
        return n + " " + units[i][0] + (n === 1 ? "" : "s") + " ago";
      }
    }
    return seconds + " s ago";
  }

  function refreshTimes() {
    document.querySelectorAll("time[data-relative][datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (!isNaN(date.getTime())) el.textContent = timeAgo(date);
    });
  }
  window.setInterval(refreshTimes, 15000);

  var FOCUSABLE = "input:not([type=hidden]):not([disabled]), select:not([disabled]), " +
    "textarea:not([disabled]), button:not([disabled]), a[href]";
  // The menu button that opened the dialog: focus goes back to it when the dialog closes.
  var opener = null;
  var pressedOn = null;

  function closeMenus(except) {
    var closed = null;
    document.querySelectorAll(".menu-slot").forEach(function (slot) {
      if (slot !== except && slot.firstElementChild) {
        slot.innerHTML = "";
        var button = slot.previousElementSibling;
        if (button) {
          button.setAttribute("aria-expanded", "false");
          closed = button;
        }
      }
    });
    return closed;
  }

  // Only a dialog htmx opened in the slot is closed here; on its own page (no htmx, or
  // a reload) the dialog is the page, and Cancel is a link back to the list.
  function openDialog() {
    return document.querySelector("#dialog-slot #dialog");
  }

  function giveFocusBack(button) {
    if (button && button.isConnected) button.focus();
  }

  function closeDialog() {
    var dialog = openDialog();
    if (!dialog) return false;
    dialog.remove();
    giveFocusBack(opener);
    opener = null;
    return true;
  }

  // A form or dialog that is the page's own content (a direct child of <main>) is left to
  // its Cancel link; one htmx swapped into a slot of the page is removed in place.
  function dismiss(link) {
    var target = document.querySelector(link.getAttribute("data-dismiss"));
    if (!target || !target.parentElement || target.parentElement.tagName === "MAIN") return false;
    if (target === openDialog()) {
      closeDialog();
    } else {
      target.remove();
    }
    // Opening the form pushed its URL: the page shows the list again, so say so.
    if (link.href && link.href !== window.location.href) {
      window.history.replaceState({ htmx: true }, "", link.href);
    }
    return true;
  }

  function focusFirst(container) {
    var field = container.querySelector("[aria-invalid=true]") || container.querySelector(FOCUSABLE);
    if (field) field.focus();
  }

  document.addEventListener("mousedown", function (event) {
    pressedOn = event.target;
  }, true);

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-dismiss]");
    if (link && window.htmx && dismiss(link)) {
      event.preventDefault();
      return;
    }
    // A click on the backdrop closes the dialog; not a drag that started inside it.
    var dialog = openDialog();
    if (dialog && event.target === dialog && pressedOn === dialog) {
      closeDialog();
      return;
    }
    var kebab = event.target.closest(".kebab");
    if (kebab) {
      var slot = kebab.nextElementSibling;
      if (slot && slot.firstElementChild) {
        // Second click on an open menu closes it instead of loading it again.
        event.preventDefault();
        event.stopImmediatePropagation();
        closeMenus(null);
        return;
      }
      closeMenus(slot);
      return;
    }
    if (!event.target.closest(".menu")) closeMenus(null);
  }, true);

  function moveInMenu(menu, event) {
    var items = Array.prototype.slice.call(menu.querySelectorAll("[role=menuitem]"));
    if (!items.length) return;
    var at = items.indexOf(document.activeElement);
    var next = {
      ArrowDown: (at + 1) % items.length,
      ArrowUp: (at - 1 + items.length) % items.length,
      Home: 0,
      End: items.length - 1
    }[event.key];
    event.preventDefault();
    items[next].focus();
  }

  function trapFocus(dialog, event) {
    var fields = Array.prototype.slice.call(dialog.querySelectorAll(FOCUSABLE));
    if (!fields.length) return;
    var first = fields[0], last = fields[fields.length - 1];
    var inside = dialog.contains(document.activeElement);
    if (!inside || (event.shiftKey && document.activeElement === first)) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    var menu = event.target.closest && event.target.closest(".menu-slot .menu");
    if (event.key === "Escape") {
      var button = closeMenus(null);
      if (closeDialog()) return;
      if (menu) giveFocusBack(button);
      return;
    }
    if (menu && /^(ArrowDown|ArrowUp|Home|End)$/.test(event.key)) {
      moveInMenu(menu, event);
      return;
    }
    if (menu && event.key === "Tab") {
      // A menu is not a stop in the tab order: Tab leaves it, back on its button.
      event.preventDefault();
      giveFocusBack(closeMenus(null));
      return;
    }
    var dialog = openDialog();
    if (dialog && event.key === "Tab") {
      trapFocus(dialog, event);
      return;
    }
    // The menu buttons are links with role=button: Space must work as on a button.
    if (event.key === " " && event.target.matches && event.target.matches(".kebab")) {
      event.preventDefault();
      event.target.click();
    }
  });

  // A menu item has done its work once its request is answered.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.closest && event.detail.elt.closest(".menu")) closeMenus(null);
  });

  // A menu is focused after the settle, not the swap: htmx wires up swapped-in links only
  // when it settles, and an item pressed before that would navigate the whole page.
  document.addEventListener("htmx:afterSettle", function (event) {
    // History restores (the Back button) fire this with no target.
    var target = event.detail.target;
    var menu = target && target.matches && target.matches(".menu-slot") && target.querySelector(".menu");
    if (menu) {
      var button = target.previousElementSibling;
      if (button) button.setAttribute("aria-expanded", "true");
      var first = menu.querySelector("[role=menuitem]");
      if (first) first.focus();
    }
  });

  document.addEventListener("htmx:afterSwap", function () {
    var dialog = openDialog();
    if (dialog && !dialog.contains(document.activeElement)) {
      // Opened from a menu (or re-rendered with errors): the menu goes, focus moves in.
      var from = closeMenus(null);
      if (from) opener = from;
      focusFirst(dialog);
    }
  });
})();
