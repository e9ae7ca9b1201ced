// Herald's API reference: renders the OpenAPI document, fetched from the
// same origin, as a browsable page. Every string from the document enters
// the page as text (text nodes, attribute values), never as markup.
"use strict";
(function () {
  const METHODS = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];
  const root = document.getElementById("docs");
  const $ = (id) => document.getElementById(id);
  const entries = []; // {section, link, text}: what the filter shows or hides
  const groups = []; // {section, nav, members}: a tag's section and its sidebar part
  const usedIds = new Set();
  let doc = {};

  // el("div", {class: "x"}, child, "text", [more]): an element; false,
  // null and undefined attributes and children are left out.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    return add(node, children);
  }
  function add(node, children) {
    for (const child of [children].flat(Infinity)) {
      if (child !== undefined && child !== null && child !== false) node.append(child);
    }
    return node;
  }
  function uniqueId(wanted) {
    const base = String(wanted).replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "x";
    let id = base;
    for (let n = 2; usedIds.has(id); n++) id = `${base}-${n}`;
    usedIds.add(id);
    return id;
  }

  // A safe subset of Markdown: paragraphs, "- " lists, `code`, **bold**
  // and [links](…) to http(s) or same-site addresses.
  function markdown(text, cls) {
    const box = el("div", { class: cls ? `md ${cls}` : "md" });
    for (const block of String(text || "").split(/\n\s*\n/)) {
      const lines = block.split("\n").filter((l) => l.trim());
      if (!lines.length) continue;
      if (lines.every((l) => /^\s*[-*] /.test(l))) {
        box.append(el("ul", null, lines.map((l) => el("li", null, inline(l.replace(/^\s*[-*] /, ""))))));
      } else {
        box.append(el("p", null, inline(lines.join("\n"))));
      }
    }
    return box;
  }
  function inline(text) {
    const parts = [];
    const pattern = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
    let last = 0;
    for (let m; (m = pattern.exec(text)); last = pattern.lastIndex) {
      parts.push(text.slice(last, m.index));
      if (m[1] !== undefined) parts.push(el("code", null, m[1]));
      else if (m[2] !== undefined) parts.push(el("strong", null, m[2]));
      else if (/^(https?:\/\/|\/|#)/i.test(m[4])) parts.push(el("a", { href: m[4], rel: "noreferrer" }, m[3]));
      else parts.push(m[0]);
    }
    parts.push(text.slice(last));
    return parts;
  }

  // `$ref`s within the document.
  function lookup(ref) {
    if (typeof ref !== "string" || !ref.startsWith("#/")) return undefined;
    return ref.slice(2).split("/").reduce((node, key) =>
      node == null ? undefined : node[key.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  }
  function deref(value) {
    for (let hops = 0; value && value.$ref && hops < 16; hops++) value = lookup(value.$ref);
    return value || {};
  }
  const refName = (ref) => String(ref).split("/").pop().replace(/~1/g, "/").replace(/~0/g, "~");

  // Schemas: a one-line type, the facts that constrain it, and (when it
  // has parts) a collapsible view of them, built when first opened.
  function typeLabel(s) {
    if (!s || typeof s !== "object") return "any";
    if (s.$ref) return refName(s.$ref);
    if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeLabel).join(" | ");
    if (s.allOf) return s.allOf.map(typeLabel).join(" & ");
    const implied = s.properties ? "object" : s.enum ? typeof s.enum[0] : s.const !== undefined ? typeof s.const : "any";
    const label = [].concat(s.type || implied).map((t) => {
      if (t === "array") return `${typeLabel(s.items)}[]`;
      if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object") {
        return `map of ${typeLabel(s.additionalProperties)}`;
      }
      return t;
    }).join(" | ");
    return s.format ? `${label} (${s.format})` : label;
  }
  function range(out, low, high, name, exclusiveLow, exclusiveHigh) {
    if (low === undefined && high === undefined && exclusiveLow === undefined && exclusiveHigh === undefined) return;
    if (low !== undefined && high !== undefined && exclusiveLow === undefined && exclusiveHigh === undefined) {
      out.push([name, low === high ? `${low}` : `${low}–${high}`]);
      return;
    }
    const lo = exclusiveLow !== undefined ? `> ${exclusiveLow}` : low !== undefined ? `≥ ${low}` : "";
    const hi = exclusiveHigh !== undefined ? `< ${exclusiveHigh}` : high !== undefined ? `≤ ${high}` : "";
    out.push([name, [lo, hi].filter(Boolean).join(", ")]);
  }
  function facts(s, prefix = "") {
    const out = [];
    if (!s || typeof s !== "object" || s.$ref) return out;
    const json = (v) => JSON.stringify(v);
    if (s.enum) out.push(["one of", s.enum.map(json).join(", ")]);
    if (s.const !== undefined) out.push(["always", json(s.const)]);
    range(out, s.minLength, s.maxLength, "length");
    range(out, s.minimum, s.maximum, "value", s.exclusiveMinimum, s.exclusiveMaximum);
    range(out, s.minItems, s.maxItems, "items");
    if (s.uniqueItems) out.push(["items", "unique"]);
    if (s.pattern) out.push(["pattern", s.pattern]);
    if (s.default !== undefined) out.push(["default", json(s.default)]);
    if (s.example !== undefined) out.push(["example", json(s.example)]);
    if (s.readOnly) out.push(["read-only", "yes"]);
    if (s.items) out.push(...facts(s.items, "each "));
    return out.map(([name, value]) => [prefix + name, value]);
  }
  function factList(s) {
    const list = facts(s);
    return list.length ? el("div", { class: "facts" }, list.map(([name, value]) =>
      el("span", { class: "fact" }, el("span", { class: "fact-name" }, name), " ", el("code", null, value)))) : null;
  }
  function hasParts(s) {
    if (!s || typeof s !== "object") return false;
    if (s.$ref) return hasParts(lookup(s.$ref));
    return !!(s.properties || s.oneOf || s.anyOf || s.allOf || hasParts(s.items) ||
      (typeof s.additionalProperties === "object" && hasParts(s.additionalProperties)));
  }
  // What the schema is made of: properties, alternatives, items, values;
  // `bare` leaves out the description and facts, shown by the caller.
  function schemaParts(s, seen, bare) {
    const box = el("div", { class: "schema" });
    if (!s || typeof s !== "object") return box;
    if (s.$ref) {
      if (seen.has(s.$ref)) return add(box, el("p", { class: "muted" }, `${refName(s.$ref)}: recursive, as above.`));
      const target = lookup(s.$ref);
      if (!target) return add(box, el("p", { class: "muted" }, `${s.$ref} does not resolve.`));
      return schemaParts(target, new Set(seen).add(s.$ref));
    }
    if (!bare) add(box, markdownOf(s), factList(s));
    if (s.properties) {
      const required = new Set(s.required || []);
      box.append(el("ul", { class: "props" }, Object.entries(s.properties).map(([name, p]) =>
        property(name, p, required.has(name), seen))));
    }
    const list = (label, items) => [el("div", { class: "label" }, label), el("ul", { class: "alts" }, items.map((a) => el("li", null, sub(a, seen))))];
    if (s.oneOf || s.anyOf) box.append(...list(s.oneOf ? "One of:" : "Any of:", s.oneOf || s.anyOf));
    if (s.allOf) box.append(...list("All of:", s.allOf));
    if (hasParts(s.items)) box.append(...list("Each item:", [s.items]));
    if (typeof s.additionalProperties === "object" && hasParts(s.additionalProperties)) {
      box.append(...list("Each value:", [s.additionalProperties]));
    }
    return box;
  }
  // A toggle for a schema's parts, and the block they go in (built when
  // first opened); nothing when the schema has no parts.
  function expander(s, seen, open, what) {
    if (!hasParts(s)) return [null, null];
    const box = el("div", { class: "parts", hidden: true });
    const button = el("button", { type: "button", class: "toggle", "aria-expanded": "false", "aria-label": `Show ${what || typeLabel(s)}` });
    let built = false;
    const show = (on) => {
      if (on && !built) { built = true; box.append(schemaParts(s, seen, !s.$ref)); }
      box.hidden = !on;
      button.setAttribute("aria-expanded", String(on));
    };
    button.addEventListener("click", () => show(box.hidden));
    if (open) show(true);
    return [button, box];
  }
  const markdownOf = (s) => (s && s.description ? markdown(s.description) : null);
  // Notes on a schema used somewhere: its description and facts, unless it
  // is a `$ref` whose parts view shows them.
  const notes = (s) => (s && s.$ref ? (hasParts(s) ? null : [markdownOf(deref(s)), factList(deref(s))]) : [markdownOf(s), factList(s)]);
  // A sub-schema on its own line: an alternative, the items, the values.
  function sub(s, seen, head, open) {
    const [toggle, box] = expander(s, seen, open);
    return el("div", { class: "sub" }, el("div", { class: "sub-head" }, toggle, head || el("code", { class: "type" }, typeLabel(s))),
      notes(s), box);
  }
  function property(name, p, required, seen) {
    const [toggle, box] = expander(p, seen, false, `the parts of ${name}`);
    const target = deref(p);
    return el("li", { class: "prop", "data-name": name },
      el("div", { class: "prop-head" }, toggle, el("code", { class: "name" }, name), el("code", { class: "type" }, typeLabel(p)),
        required ? el("span", { class: "badge required" }, "required") : el("span", { class: "badge optional" }, "optional"),
        target.deprecated && el("span", { class: "badge deprecated" }, "deprecated")),
      notes(p), box);
  }

  // Operations.
  function security(op) {
    const rules = op.security || doc.security || [];
    const schemes = (doc.components && doc.components.securitySchemes) || {};
    const names = rules.flatMap((rule) => Object.keys(rule));
    if (!names.length) return el("div", { class: "security", "data-security": "none" }, "None: no credentials needed.");
    const describe = (name) => {
      const s = schemes[name] || {};
      if (s.type === "http" && String(s.scheme).toLowerCase() === "bearer") {
        return ["a bearer token: ", el("code", null, "Authorization: Bearer <token>")];
      }
      if (s.type === "apiKey") return ["an API key in the ", s.in, " ", el("code", null, s.name)];
      return [s.type || name];
    };
    const optional = rules.some((rule) => !Object.keys(rule).length);
    return el("div", { class: "security", "data-security": names.join(" ") }, optional ? "Optional: " : "Required: ",
      names.map((name, i) => [i ? " or " : "", el("span", { class: "scheme" }, name), " (", describe(name), ")"]));
  }
  function parameters(list) {
    if (!list.length) return null;
    return el("table", { class: "params" },
      el("thead", null, el("tr", null, ["Name", "In", "Type", "Description"].map((h) => el("th", null, h)))),
      el("tbody", null, list.map((p) => el("tr", { "data-name": p.name, "data-in": p.in },
        el("td", null, el("code", { class: "name" }, p.name), p.required ? el("span", { class: "badge required" }, "required") : null,
          p.deprecated && el("span", { class: "badge deprecated" }, "deprecated")),
        el("td", null, p.in),
        el("td", null, el("code", { class: "type" }, typeLabel(p.schema)), factList(p.schema && p.schema.$ref ? deref(p.schema) : p.schema)),
        el("td", null, markdownOf(p))))));
  }
  function content(media, open) {
    return Object.entries(media || {}).map(([type, m]) => el("div", { class: "media", "data-media-type": type },
      m && m.schema ? sub(m.schema, new Set(), [el("span", { class: "media-type" }, type), el("code", { class: "type" }, typeLabel(m.schema))], open)
        : el("span", { class: "media-type" }, type)));
  }
  function requestBody(op) {
    if (!op.requestBody) return null;
    const body = deref(op.requestBody);
    return el("div", { class: "block" }, el("h4", null, "Request body ",
      el("span", { class: body.required ? "badge required" : "badge optional" }, body.required ? "required" : "optional")),
      markdownOf(body), content(body.content, true));
  }
  function responses(op) {
    return el("div", { class: "block" }, el("h4", null, "Responses"), el("ul", { class: "responses" },
      Object.entries(op.responses || {}).map(([status, r]) => {
        const answer = deref(r);
        const headers = Object.entries(answer.headers || {}).map(([name, h]) => {
          const header = deref(h);
          return el("li", null, el("code", null, name), " ", el("code", { class: "type" }, typeLabel(header.schema)), " ", markdown(header.description, "inline"));
        });
        return el("li", { class: "response", "data-status": status },
          el("span", { class: `http-status status-${status[0]}xx` }, status),
          el("div", { class: "response-body" }, markdown(answer.description || ""), content(answer.content, false),
            headers.length ? el("div", { class: "headers" }, el("span", { class: "label" }, "Headers"), el("ul", null, headers)) : null));
      })));
  }
  function pathNodes(path) {
    return path.split(/(\{[^}]+\})/).filter(Boolean).map((s) => (s.startsWith("{") ? el("span", { class: "path-param" }, s) : s));
  }
  function operation(path, method, op, item, tag) {
    const id = uniqueId(op.operationId ? `op-${op.operationId}` : `op-${method}-${path}`);
    const title = op.summary || String(op.description || "").split("\n")[0];
    const described = op.summary ? op.description : String(op.description || "").split("\n").slice(1).join("\n");
    const locked = (op.security || doc.security || []).some((rule) => Object.keys(rule).length);
    const own = (op.parameters || []).map(deref);
    const shared = (item.parameters || []).map(deref).filter((p) => !own.some((o) => o.name === p.name && o.in === p.in));
    const details = el("details", { class: "op" },
      el("summary", { class: "op-head" }, el("span", { class: `method method-${method}` }, method.toUpperCase()),
        el("code", { class: "path" }, pathNodes(path)), el("span", { class: "op-summary" }, inline(title)),
        op.deprecated && el("span", { class: "badge deprecated" }, "deprecated"),
        el("span", { class: locked ? "badge auth" : "badge public" }, locked ? "auth" : "public")),
      el("div", { class: "op-body" }, described && described.trim() ? markdown(described) : null,
        el("div", { class: "block" }, el("h4", null, "Security"), security(op)),
        shared.length + own.length ? el("div", { class: "block" }, el("h4", null, "Parameters"), parameters([...shared, ...own])) : null,
        requestBody(op), responses(op)));
    const section = el("section", { class: "operation", id, "data-method": method, "data-path": path, "data-tag": tag,
      "data-operation-id": op.operationId }, details);
    const link = el("li", null, el("a", { href: `#${id}` }, el("span", { class: `method-mini method-${method}` }, method.toUpperCase()),
      el("span", { class: "nav-path" }, path.split("/").map((s, i) => (i ? [el("wbr"), `/${s}`] : s)))));
    entries.push({ section, link, text: [method, path, title, op.operationId].join(" ").toLowerCase() });
    return { section, link };
  }

  function render() {
    const info = doc.info || {};
    $("docs-title").textContent = info.title ? `${info.title} API` : "API";
    $("docs-meta").replaceChildren(...[info.version && `version ${info.version}`, doc.openapi && `OpenAPI ${doc.openapi}`,
      info.license && info.license.name, ...(doc.servers || []).map((s) => s.url)].filter(Boolean).map((t) => el("span", null, t)),
    el("a", { href: root.dataset.spec }, "openapi.json"));
    $("docs-description").replaceChildren(markdown(info.description));
    const declared = (doc.tags || []).map((t) => t.name);
    const byTag = new Map(declared.map((name) => [name, []]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of Object.keys(item || {}).filter((k) => METHODS.includes(k))) {
        const tag = (item[method].tags || [])[0] || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([path, method, item[method], item]);
      }
    }
    const sections = [];
    const nav = [];
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const about = (doc.tags || []).find((t) => t.name === tag) || {};
      const id = uniqueId(`tag-${tag}`);
      const rendered = ops.map(([path, method, op, item]) => operation(path, method, op, item, tag));
      const section = el("section", { class: "tag", id, "data-tag": tag },
        el("h2", null, tag), about.description ? markdown(about.description, "tag-description") : null,
        rendered.map((r) => r.section));
      const part = el("div", { class: "nav-group", "data-tag": tag }, el("a", { class: "nav-tag", href: `#${id}` }, tag),
        el("ul", null, rendered.map((r) => r.link)));
      groups.push({ section, nav: part, members: entries.filter((e) => rendered.some((r) => r.section === e.section)) });
      sections.push(section);
      nav.push(part);
    }
    const schemas = Object.entries((doc.components && doc.components.schemas) || {});
    if (schemas.length) {
      const section = el("section", { class: "tag schemas", id: uniqueId("schemas"), "data-tag": "schemas" }, el("h2", null, "Schemas"),
        el("ul", { class: "schema-list" }, schemas.map(([name]) => {
          const ref = `#/components/schemas/${name.replace(/~/g, "~0").replace(/\//g, "~1")}`;
          const item = el("li", { "data-schema": name }, sub({ $ref: ref }, new Set(), el("code", { class: "name" }, name)));
          entries.push({ section: item, link: null, text: name.toLowerCase() });
          return item;
        })));
      groups.push({ section, nav: el("div", { class: "nav-group" }, el("a", { class: "nav-tag", href: `#${section.id}` }, "Schemas")),
        members: entries.filter((e) => !e.link) });
      sections.push(section);
      nav.push(groups[groups.length - 1].nav);
    }
    $("docs-nav").replaceChildren(...nav);
    $("docs-tags").replaceChildren(...sections);
    $("docs-status").remove();
  }

  function applyFilter() {
    const value = $("docs-filter").value;
    const terms = value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const entry of entries) {
      const match = terms.every((t) => entry.text.includes(t));
      entry.section.hidden = !match;
      if (entry.link) entry.link.hidden = !match;
      if (match && entry.link) shown++;
    }
    for (const group of groups) {
      const any = group.members.some((e) => !e.section.hidden);
      group.section.hidden = !any;
      group.nav.hidden = !any;
    }
    $("docs-empty").hidden = shown > 0;
    const query = value ? `?filter=${encodeURIComponent(value)}` : "";
    history.replaceState(null, "", `${location.pathname}${query}${location.hash}`);
  }
  function openTarget() {
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.classList.contains("operation")) {
      target.querySelector("details.op").open = true;
      target.scrollIntoView();
    }
  }
  function setAll(open) {
    for (const d of document.querySelectorAll("section.operation:not([hidden]) > details.op")) d.open = open;
  }
  function fail(error) {
    root.dataset.state = "error";
    const status = $("docs-status") || add($("docs-main"), el("p", { id: "docs-status" }));
    status.replaceWith(el("div", { id: "docs-status", class: "load-error", role: "alert" },
      el("strong", null, "The API document could not be loaded. "), String((error && error.message) || error), " ",
      el("a", { href: root.dataset.spec }, "Open the document directly.")));
  }
  async function load() {
    const url = root.dataset.spec;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`GET ${url} answered ${response.status} ${response.statusText}`.trim() + ".");
      const body = await response.json().catch(() => { throw new Error(`GET ${url} did not answer JSON.`); });
      if (!body || typeof body.paths !== "object") throw new Error(`${url} is not an OpenAPI document.`);
      doc = body;
      render();
      const filter = $("docs-filter");
      filter.value = new URLSearchParams(location.search).get("filter") || "";
      filter.addEventListener("input", applyFilter);
      filter.addEventListener("keydown", (e) => { if (e.key === "Escape") { filter.value = ""; applyFilter(); } });
      document.addEventListener("keydown", (e) => {
        if (e.key === "/" && document.activeElement !== filter) { e.preventDefault(); filter.focus(); }
      });
      $("docs-expand").addEventListener("click", () => setAll(true));
      $("docs-collapse").addEventListener("click", () => setAll(false));
      window.addEventListener("hashchange", openTarget);
      applyFilter();
      openTarget();
      root.dataset.state = "ready";
    } catch (error) {
      fail(error);
    }
  }
  load();
})();
