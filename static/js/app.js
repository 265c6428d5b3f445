// Small behaviours on top of htmx: menus close on Escape, outside clicks and Tab; menu
// buttons tell assistive technology whether they are open; the keyboard works as in any
// menu (Space opens, arrows move). Dialogs are native: the browser traps focus and closes
// them on Escape or a backdrop click; this opens them as modals and gives focus back to
// what opened them.
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

  // What opened the dialog (a menu's button, or a link): focus goes back to it at the end.
  var opener = null;

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

  // Only a dialog htmx opened in the slot is a modal; on its own page (no htmx, or a
  // reload) the dialog is the page, and Cancel is a link back to the list.
  function modalDialog() {
    return document.querySelector("#dialog-slot dialog[data-modal]");
  }

  function giveFocusBack(button) {
    if (button && button.isConnected) button.focus();
  }

  // A form or dialog that is the page's own content (a direct child of <main>) is left to
  // its Cancel link; one htmx swapped into a slot of the page is removed in place.
  function dismiss(link) {
    var target = document.querySelector(link.getAttribute("data-dismiss"));
    if (!target || !target.parentElement || target.parentElement.tagName === "MAIN") return false;
    if (target === modalDialog()) {
      target.close();
    } else {
      target.remove();
    }
    // Opening the form pushed its URL: the page shows the list again, so say so.
    if (link.href && link.href !== window.location.href) {
      window.history.replaceState({ htmx: true }, "", link.href);
    }
    return true;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-dismiss]");
    if (link && window.htmx && dismiss(link)) {
      event.preventDefault();
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

  // The browser keeps Tab inside a modal dialog, except that at either end it lets focus out
  // to its own toolbar; the dialog wraps around instead, from last to first and back.
  var FOCUSABLE = "input:not([type=hidden]):not([disabled]), select:not([disabled]), " +
    "textarea:not([disabled]), button:not([disabled]), a[href]";

  function wrapTab(dialog, event) {
    var fields = dialog.querySelectorAll(FOCUSABLE);
    var first = fields[0], last = fields[fields.length - 1];
    var edge = event.shiftKey ? first : last;
    if (edge && document.activeElement === edge) {
      event.preventDefault();
      (event.shiftKey ? last : first).focus();
    }
  }

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

  document.addEventListener("keydown", function (event) {
    var menu = event.target.closest && event.target.closest(".menu-slot .menu");
    if (event.key === "Escape") {
      var button = closeMenus(null);
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
    var dialog = modalDialog();
    if (dialog && dialog.open && event.key === "Tab") {
      wrapTab(dialog, event);
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
    if (!modalDialog()) {
      // A dialog whose form succeeded is swapped away, without a close event.
      giveFocusBack(opener);
      opener = null;
    } else if (!opener) {
      // Just arrived: the menu it came from goes, and its button gets the focus back later.
      var active = document.activeElement;
      opener = closeMenus(null) || (active !== document.body ? active : null);
    }
  });

  // Opened once htmx has wired up its form (a swap with errors brings a new dialog): the
  // browser focuses the first control, or here the first field that was refused.
  document.addEventListener("htmx:load", function (event) {
    var dialog = event.detail.elt;
    if (!dialog.matches("dialog[data-modal]") || dialog.open) return;
    dialog.showModal();
    var refused = dialog.querySelector("[aria-invalid=true]");
    if (refused) refused.focus();
  });

  // "close" does not bubble: listen while it goes down. Escape, the backdrop and Cancel end here.
  document.addEventListener("close", function (event) {
    if (event.target !== modalDialog()) return;
    event.target.remove();
    giveFocusBack(opener);
    opener = null;
  }, true);

  // "Menu" on narrow screens: without script the button stays hidden and the links show,
  // stacked; with it the button folds them away and tells assistive technology whether
  // they are open. Escape folds them again and gives the focus back to the button.
  var navToggle = document.querySelector(".nav-toggle");
  if (navToggle) {
    navToggle.hidden = false;
    navToggle.addEventListener("click", function () {
      var open = navToggle.getAttribute("aria-expanded") === "true";
      navToggle.setAttribute("aria-expanded", open ? "false" : "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || navToggle.getAttribute("aria-expanded") !== "true") return;
      var menu = document.getElementById(navToggle.getAttribute("aria-controls"));
      if (event.target !== navToggle && !(menu && menu.contains(event.target))) return;
      navToggle.setAttribute("aria-expanded", "false");
      navToggle.focus();
    });
  }

  // A table's own scroll box is a stop in the tab order only while it scrolls, when a
  // keyboard needs it; the markup makes every box focusable, for a browser without script.
  function scrollBoxStops() {
    document.querySelectorAll(".table-scroll").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth) {
        box.setAttribute("tabindex", "0");
      } else if (box !== document.activeElement) {
        box.removeAttribute("tabindex");
      }
    });
  }
  scrollBoxStops();
  window.addEventListener("load", scrollBoxStops);
  window.addEventListener("resize", scrollBoxStops);
  document.addEventListener("htmx:afterSettle", scrollBoxStops);

  // Where the browser has no closedby="any" yet, a click on the backdrop closes the dialog
  // all the same (the backdrop's clicks go to the dialog, outside its box).
  if (!("closedBy" in HTMLDialogElement.prototype)) {
    document.addEventListener("click", function (event) {
      var dialog = modalDialog(), box = dialog && dialog.getBoundingClientRect();
      if (!dialog || event.target !== dialog) return;
      var inside = event.clientX >= box.left && event.clientX <= box.right &&
        event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) dialog.close();
    });
  }
})();
