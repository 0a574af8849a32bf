/* The Dialler console's own script (no library, no build step). Loaded with `defer` from the
   daemon itself: the Content-Security-Policy allows no inline script and no inline handler, so
   every behaviour is attached here. docs/console.md. */
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function announce(text) {
    const region = document.getElementById("announce");
    if (region) { region.textContent = ""; region.textContent = text; }
  }

  /* A request to the daemon carrying the CSRF token; resolves to {ok, status, data}. */
  async function send(method, url, body, type) {
    const headers = { "X-CSRF-Token": csrf, "Accept": "application/json" };
    let payload = body;
    if (body !== undefined && type === undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    } else if (type) {
      headers["Content-Type"] = type;
    }
    const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    let data = null;
    const text = await response.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { text }; }
    return { ok: response.ok, status: response.status, data };
  }

  function errorOf(result) {
    const error = (result.data && result.data.error) || {};
    return {
      message: error.message || ("request failed (HTTP " + result.status + ")"),
      problems: error.problems || [],
      field: error.field,
    };
  }

  function clear(element) { while (element.firstChild) element.removeChild(element.firstChild); }

  function item(text, testid, attrs) {
    const li = document.createElement("li");
    li.textContent = text;
    if (testid) li.dataset.testid = testid;
    for (const [k, v] of Object.entries(attrs || {})) li.setAttribute(k, v);
    return li;
  }

  /* --- copy buttons (campaign ids, the escalation summary) -------------------------------- */
  async function copy(button, text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      button.textContent = "Copy failed";
      return;
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = "Copied";
    button.classList.add("copied");
    announce("Copied to the clipboard");
    setTimeout(function () { button.textContent = label; button.classList.remove("copied"); }, 2000);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy], [data-copy-from]");
    if (!button) return;
    const text = button.dataset.copy !== undefined
      ? button.dataset.copy
      : document.getElementById(button.dataset.copyFrom).textContent;
    copy(button, text);
  });

  /* --- action buttons: POST (start, pause, disable...) and DELETE ------------------------- */
  function showProblems(result, near) {
    const error = errorOf(result);
    const list = document.getElementById("problems");
    if (list && !near) {
      clear(list);
      const problems = error.problems.length ? error.problems : [error.message];
      for (const p of problems) list.appendChild(item(p, "problem"));
      return;
    }
    const slot = near && near.querySelector(".error");
    if (slot) slot.textContent = error.problems.length ? error.problems.join("; ") : error.message;
    else announce(error.message);
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-post], button[data-delete]");
    if (!button || button.disabled) return;
    if (button.dataset.confirm && !button.classList.contains("armed")) {
      button.classList.add("armed");
      button.dataset.label = button.textContent;
      button.textContent = "Click again to " + button.dataset.confirm;
      return;
    }
    button.disabled = true;
    const method = button.dataset.post ? "POST" : "DELETE";
    const result = await send(method, button.dataset.post || button.dataset.delete);
    if (result.ok) { location.reload(); return; }
    button.disabled = false;
    showProblems(result, button.closest("form"));
  });

  /* --- JSON forms (bots, suppressions): field names with dots nest ----------------------- */
  function formObject(form) {
    const data = {};
    for (const field of form.querySelectorAll("input[name], textarea[name], select[name]")) {
      const value = field.value.trim();
      if (value === "") continue;
      const path = field.name.split(".");
      let at = data;
      for (const part of path.slice(0, -1)) at = at[part] = at[part] || {};
      at[path[path.length - 1]] = value;
    }
    return data;
  }

  for (const form of document.querySelectorAll("form[data-json]")) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const data = formObject(form);
      const result = await send(form.dataset.method || "POST", form.dataset.json, data);
      if (!result.ok) { showProblems(result, form); return; }
      const then = form.dataset.then;
      if (then) location.assign(then.replace("{name}", encodeURIComponent(data.name || "")));
      else location.reload();
    });
  }

  const swap = document.getElementById("swap-form");
  if (swap) {
    swap.addEventListener("submit", async function (event) {
      event.preventDefault();
      const old = swap.elements.old.value;
      const result = await send("POST", "/carriers/" + encodeURIComponent(old) + "/swap", { to: swap.elements.to.value });
      if (!result.ok) { showProblems(result, swap); return; }
      const names = result.data.campaigns;
      document.getElementById("swap-result").textContent = names.length
        ? "Replaced in: " + names.join(", ") : "No campaign's pool had that number.";
    });
  }

  /* --- live panels: poll every few seconds, never while the tab is hidden ---------------- */
  const pollers = [];
  function fragmentUrl(element) {
    const base = element.dataset.poll;
    return element.id === "calls" ? base + location.search : base;
  }
  async function refresh(poller) {
    if (poller.busy || document.visibilityState !== "visible") return;
    poller.busy = true;
    try {
      const response = await fetch(fragmentUrl(poller.element), { headers: { "Accept": "text/html-fragment" }, credentials: "same-origin" });
      if (response.status === 401) { location.assign("/login"); return; }
      if (response.ok) {
        const html = await response.text();
        const before = poller.element.querySelector("[data-testid=state-badge]");
        poller.element.innerHTML = html;  // rendered and escaped by the daemon's templates
        const after = poller.element.querySelector("[data-testid=state-badge]");
        if (before && after && before.dataset.state !== after.dataset.state) location.reload();
      }
    } catch (e) { /* the next tick tries again */ }
    finally { poller.busy = false; }
  }
  for (const element of document.querySelectorAll("[data-poll]")) {
    const poller = { element, busy: false };
    pollers.push(poller);
    setInterval(function () { refresh(poller); }, Number(element.dataset.every || 2000));
  }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") pollers.forEach(refresh);
  });

  const filter = document.getElementById("state-filter");
  const calls = document.getElementById("calls");
  if (filter && calls) {
    const go = function (state, after) {
      const params = new URLSearchParams();
      if (state) params.set("state", state);
      if (after) params.set("after", after);
      const query = params.toString();
      history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
      refresh(pollers.find(function (p) { return p.element === calls; }));
    };
    filter.addEventListener("change", function () { go(filter.value, ""); });
    calls.addEventListener("click", function (event) {
      const link = event.target.closest("a[data-page]");
      if (!link) return;
      event.preventDefault();
      go(filter.value, link.dataset.page);
    });
  }

  /* --- the test call: its stages as they happen ------------------------------------------ */
  const STAGES = {
    originated: "Originated: the dialler sent the call to Asterisk.",
    ringing: "Ringing: the callee's phone rings.",
    answered: "Answered: the callee picked up.",
    attached: "Attached: a bot worker took the call",
    audio: "Audio: the worker heard and sent audio",
    result: "Result: the bot reported",
  };
  const testForm = document.getElementById("test-call-form");
  if (testForm) {
    testForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const list = document.getElementById("test-call-stages");
      clear(list);
      const button = testForm.querySelector("button");
      button.disabled = true;
      const body = { bot: testForm.dataset.bot, to: testForm.elements.to.value, from: testForm.elements.from.value };
      const last = { stage: null };
      try {
        const response = await fetch("/bots/" + encodeURIComponent(testForm.dataset.bot) + "/test-call", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body),
        });
        if (!response.ok) {
          const text = await response.text();
          let message = text;
          try { message = JSON.parse(text).error.message; } catch (e) { /* keep the text */ }
          list.appendChild(item("Failed: " + message, "test-call-stage", { "data-stage": "failed" }));
          return;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          buffer += decoder.decode(chunk.value, { stream: true });
          let newline;
          while ((newline = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, newline);
            buffer = buffer.slice(newline + 1);
            if (line.trim()) showStage(list, JSON.parse(line), last);
          }
        }
      } finally {
        button.disabled = false;
      }
    });
  }

  function showStage(list, stage, last) {
    let text = STAGES[stage.stage] || stage.stage;
    if (stage.stage === "attached" && stage.worker) text += " (" + stage.worker + ").";
    if (stage.stage === "audio") text += ": " + stage.frames_received + " frames in, " + stage.frames_sent + " out.";
    if (stage.stage === "result") text += " " + stage.disposition + ".";
    if (stage.stage === "failed") {
      text = "Failed after " + (last.stage || "the start") + ": " + stage.reason + ". " + explain(last.stage, stage.reason);
    }
    if (stage.t !== undefined) text += " (" + stage.t + " s)";
    last.stage = stage.stage;
    list.appendChild(item(text, "test-call-stage", { "data-stage": stage.stage }));
  }

  function explain(after, reason) {
    if (after === "originated" || after === null) return "The call never rang: check the number, the carrier and the SIP code.";
    if (after === "ringing") return "Nobody answered: try a number that picks up.";
    if (after === "answered") return "No bot worker took the call: check the fleet page for free capacity.";
    if (after === "attached") return "The worker took the call but reported no result: check the bot's pipeline (Speech-to-Text, Language model, Text-to-Speech).";
    return "";
  }

  /* --- the wizard ------------------------------------------------------------------------ */
  const wizard = document.getElementById("wizard");
  if (wizard) setUpWizard(wizard);

  function setUpWizard(form) {
    const steps = ["basics", "numbers", "config", "csv"];
    const stepOf = function (path) {
      if (path === "name" || path === "bot") return "basics";
      if (path === "numbers") return "numbers";
      if (path === "") return null;
      return "config";
    };
    const next = document.getElementById("wizard-next");
    const back = document.getElementById("wizard-back");
    const finish = document.getElementById("wizard-finish");
    const formError = document.getElementById("wizard-error");
    const warning = form.querySelector("[data-testid=redial-overlap-warning]");
    let campaignId = form.dataset.campaignId || "";
    let hasContacts = form.dataset.hasContacts === "true";
    let current = 0;
    let problems = [];
    let sequence = 0;
    let sequenceDone = 0;
    let pending = false;

    function documentOf() {
      const doc = {};
      const set = function (path, value) {
        const parts = path.split(".");
        let at = doc;
        for (const part of parts.slice(0, -1)) at = at[part] = at[part] || {};
        at[parts[parts.length - 1]] = value;
      };
      const lists = {};
      for (const field of form.querySelectorAll("[data-path]")) {
        const path = field.dataset.path;
        if (field.type === "checkbox" && field.dataset.type !== "bool") {
          lists[path] = lists[path] || [];
          if (field.checked) lists[path].push(field.value);
          continue;
        }
        if (field.dataset.type === "bool") { set(path, field.checked); continue; }
        const raw = field.value.trim();
        if (field.dataset.type === "int") {
          if (raw === "") continue;  // blank: the default (concurrency 50)
          set(path, /^-?[0-9]+$/.test(raw) ? Number(raw) : raw);
        } else if (field.dataset.type === "list") {
          set(path, raw ? raw.split(",").map(function (s) { return s.trim(); }).filter(Boolean) : []);
        } else if (field.dataset.type === "optional") {
          set(path, raw === "" ? null : raw);
        } else if (path === "bot") {
          if (raw !== "") set(path, raw);
        } else {
          set(path, raw);
        }
      }
      for (const [path, values] of Object.entries(lists)) set(path, values);
      return doc;
    }

    function showErrors() {
      for (const slot of form.querySelectorAll("[data-error-for]")) clear(slot);
      for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
      const general = [];
      for (const p of problems) {
        let slot = form.querySelector('[data-error-for="' + CSS.escape(p.field) + '"]');
        if (!slot && p.field.indexOf(".") > 0) {
          slot = form.querySelector('[data-error-for="' + CSS.escape(p.field.split(".")[0]) + '"]');
        }
        if (!slot) { general.push(p.message); continue; }
        const line = document.createElement("p");
        line.className = "field-error";
        line.dataset.testid = "field-error";
        line.dataset.field = p.field;
        line.textContent = p.message;
        slot.appendChild(line);
        for (const field of form.querySelectorAll('[data-path="' + CSS.escape(p.field) + '"]')) field.setAttribute("aria-invalid", "true");
      }
      formError.textContent = general.join("; ");
    }

    function stepValid(index) {
      const step = steps[index];
      if (step === "csv") {
        const alwaysOn = form.querySelector('[data-path="always_on"]').checked;
        return alwaysOn || hasContacts;
      }
      return !pending && !problems.some(function (p) { return stepOf(p.field) === step; });
    }

    function render() {
      const items = document.querySelectorAll("[data-testid=wizard-step]");
      items.forEach(function (li, i) {
        if (i === current) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
      });
      for (const panel of form.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== steps[current];
      back.disabled = current === 0;
      const last = current === steps.length - 1;
      next.hidden = last;
      finish.hidden = !last;
      next.disabled = last || !stepValid(current);
      finish.disabled = !last || !stepValid(current);
    }

    let checked = null;  // the document last sent for checking
    let timer = null;  // the next check, soon after typing stops
    async function validate() {
      const doc = documentOf();
      const text = JSON.stringify(doc);
      if (text === checked) {  // nothing changed (a blur's change event): keep the answer
        if (sequenceDone === sequence) { pending = false; render(); }
        return;
      }
      checked = text;
      const mine = ++sequence;
      pending = true;
      render();
      const result = await send("POST", "/campaigns/validate", { campaign: doc, id: campaignId || null });
      if (mine !== sequence) return;  // a newer check is on its way
      if (JSON.stringify(documentOf()) !== text) {  // changed meanwhile: this answer is stale
        clearTimeout(timer);
        timer = setTimeout(validate, 0);
        return;
      }
      sequenceDone = mine;
      pending = false;
      if (result.ok) {
        problems = result.data.problems;
        warning.hidden = !result.data.redial_overlap;
        const list = document.getElementById("wizard-warnings");
        clear(list);
        for (const w of result.data.warnings) list.appendChild(item(w));
      } else {
        problems = [{ field: "", message: errorOf(result).message }];
      }
      showErrors();
      render();
    }

    form.addEventListener("input", function (event) {
      if (event.target.id === "f-csv") return;
      clearTimeout(timer);
      if (JSON.stringify(documentOf()) !== checked) { pending = true; render(); }
      timer = setTimeout(validate, 200);
    });
    form.addEventListener("change", function (event) {
      if (event.target.id === "f-csv") return;
      clearTimeout(timer);
      validate();
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); });

    async function save() {
      const doc = documentOf();
      const result = campaignId
        ? await send("PUT", "/campaigns/" + campaignId, doc)
        : await send("POST", "/campaigns", doc);
      if (!result.ok) {
        const error = errorOf(result);
        formError.textContent = error.problems.length ? error.problems.join("; ") : error.message;
        return false;
      }
      if (!campaignId) {
        campaignId = result.data.id;
        form.dataset.campaignId = campaignId;
        history.replaceState(null, "", "/campaigns/" + campaignId + "/edit");
      }
      return true;
    }

    next.addEventListener("click", async function () {
      if (next.disabled) return;
      if (steps[current] === "config") {
        next.disabled = true;
        if (!(await save())) { render(); return; }
      }
      current += 1;
      render();
      const heading = form.querySelector('[data-panel="' + steps[current] + '"] h2');
      if (heading) { heading.tabIndex = -1; heading.focus(); }
    });
    back.addEventListener("click", function () {
      if (current > 0) current -= 1;
      render();
    });
    finish.addEventListener("click", function () {
      if (!finish.disabled && campaignId) location.assign("/campaigns/" + campaignId);
    });

    const upload = document.getElementById("f-csv");
    upload.addEventListener("change", async function () {
      const file = upload.files[0];
      if (!file || !campaignId) return;
      formError.textContent = "";
      const result = await send("POST", "/campaigns/" + campaignId + "/contacts/import", file, "text/csv");
      const box = document.getElementById("csv-result");
      const rows = document.getElementById("csv-rows");
      const warnings = document.getElementById("csv-warnings");
      clear(rows);
      clear(warnings);
      if (!result.ok) {
        const error = errorOf(result);
        formError.textContent = "The file was not imported: " + error.message;
        return;
      }
      const summary = result.data;
      box.hidden = false;
      box.querySelector("[data-testid=csv-imported]").textContent = summary.imported;
      box.querySelector("[data-testid=csv-rejected]").textContent = summary.rejected;
      for (const row of summary.rejected_rows) rows.appendChild(item("Line " + row.line + ": " + row.reason, "csv-rejected-row"));
      if (summary.rejected_rows_omitted > 0) rows.appendChild(item("… and " + summary.rejected_rows_omitted + " more"));
      for (const w of summary.warnings) warnings.appendChild(item(w, "csv-warning"));
      if (summary.imported > 0) hasContacts = true;
      announce("Imported " + summary.imported + ", rejected " + summary.rejected);
      render();
    });

    render();
    validate();
  }
})();
