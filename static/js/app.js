// Small behaviours on top of htmx: menus and dialogs close on Escape, outside
// clicks and Cancel; menu buttons tell assistive technology whether they are open.
(function () {
  "use strict";

  // The badge poll sends what the page shows ("id.version,...") so that the server
  // answers with only the rows that changed.
  window.providerAdmin = {
    knownVersions: function () {
      var seen = {};
      document.querySelectorAll("[data-provider-id][data-version]").forEach(function (el) {
        seen[el.getAttribute("data-provider-id")] = el.getAttribute("data-version");
      });
      return Object.keys(seen).map(function (id) { return id + "." + seen[id]; }).join(",");
    }
  };

  function closeMenus(except) {
    document.querySelectorAll(".menu-slot").forEach(function (slot) {
      if (slot !== except && slot.firstElementChild) {
        slot.innerHTML = "";
        var button = slot.previousElementSibling;
        if (button) button.setAttribute("aria-expanded", "false");
      }
    });
  }

  function closeDialog() {
    var dialog = document.getElementById("dialog");
    if (dialog) dialog.remove();
  }

  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss && window.htmx) {
      var target = document.querySelector(dismiss.getAttribute("data-dismiss"));
      if (target) {
        event.preventDefault();
        target.remove();
        return;
      }
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

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    closeMenus(null);
    closeDialog();
  });

  // A menu item has done its work once its request is answered.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.closest && event.detail.elt.closest(".menu")) closeMenus(null);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var menu = event.detail.target.querySelector && event.detail.target.querySelector(".menu");
    if (menu) {
      var button = event.detail.target.previousElementSibling;
      if (button) button.setAttribute("aria-expanded", "true");
      var first = menu.querySelector("[role=menuitem]");
      if (first) first.focus();
    }
    var dialog = document.getElementById("dialog");
    if (dialog && dialog.contains(event.detail.target) || event.detail.target.id === "dialog-slot") {
      closeMenus(null);
      var field = dialog && dialog.querySelector("input:not([type=hidden]), button");
      if (field) field.focus();
    }
  });
})();
