// The page's behaviour: DataTables (embedded from the itables package, see build.py) makes
// every table.eh-table sortable and filterable and draws the gallery of flipped images,
// a page of cards at a time; their thumbnails load lazily. Without it the tables stay static.
(function () {
  "use strict";

  function loadDataTables() {
    const el = document.getElementById("eh-dt-module");
    const bytes = Uint8Array.from(atob(el.textContent.trim()), (c) => c.charCodeAt(0));
    const blob = new Blob([bytes], { type: "text/javascript" });
    const url = URL.createObjectURL(blob);
    return import(url).finally(() => URL.revokeObjectURL(url));
  }

  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, (c) => (
      { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function num(v, digits) {
    return v === null || v === undefined ? "" : Number(v).toFixed(digits);
  }

  function image(src, alt, cls, side) {
    if (!src) return "";
    return `<a href="${esc(src)}" target="_blank"><img loading="lazy" src="${esc(src)}" ` +
      `alt="${esc(alt)}" class="${cls}" data-side="${side}"></a>`;
  }

  // One side of a card: what the model saw, then the task's drawings of its output.
  function side(entry, name, pred, score) {
    if (!entry || !entry.input) {
      return `<span class="eh-note">${esc(entry && entry.note || "no input drawn")}</span>`;
    }
    const hw = entry.hw ? `${entry.hw[1]} x ${entry.hw[0]}` : "";
    const sure = score === null ? "" : ` (${num(score, 2)})`;
    const seen = `<figure>${image(entry.input, name + " input", "eh-input", name)}` +
      `<figcaption>${name}: what the model saw, ${hw}</figcaption></figure>`;
    const drawn = (entry.panels || []).map((p) => `<figure>${image(p.file,
      name + " " + p.title, "eh-draw", name)}<figcaption>${name}: ${esc(p.title)}</figcaption>` +
      "</figure>");
    const note = entry.note ? `<div class="eh-note">${esc(entry.note)}</div>` : "";
    return `<div class="eh-cap">${name}: ${esc(pred)}${sure}</div>` +
      `<div class="eh-panels">${seen}${drawn.join("")}</div>${note}`;
  }

  function meta(row, worse) {
    const cls = row.direction === worse ? "worse" : "better";
    return `<div class="eh-meta"><div class="eh-id">${esc(row.sample_id)}</div>` +
      `<div>truth: ${esc(row.label)}</div>` +
      `<div><span class="eh-dir ${cls}">${esc(row.direction)}</span></div>` +
      `<div>A: ${esc(row.pred_a)}</div><div>B: ${esc(row.pred_b)}</div></div>`;
  }

  function gallery(DataTable, g) {
    const dir = document.getElementById("eh-dir");
    const cls = document.getElementById("eh-class");
    const moved = document.getElementById("eh-moved");
    const worse = dir && dir.options.length > 1 ? dir.options[1].value : "";
    DataTable.ext.search.push(function (settings, _data, _index, row) {
      if (settings.nTable.id !== "eh-gallery") return true;
      if (dir && dir.value && row.direction !== dir.value) return false;
      if (cls && cls.value && !row.classes.includes(cls.value)) return false;
      const least = moved ? parseFloat(moved.value) : NaN;
      return isNaN(least) || (row.moved !== null && row.moved >= least);
    });
    const table = new DataTable("#eh-gallery", {
      data: g.cards,
      deferRender: true,
      pageLength: 10,
      lengthMenu: [5, 10, 25, 50, 100],
      order: [[1, "desc"]],
      autoWidth: false,
      columns: [
        { title: "image", data: "sample_id", render: (d, type, row) => type === "display"
          ? meta(row, worse) : `${d} ${row.label} ${row.direction} ${row.pred_a} ${row.pred_b}` },
        { title: "moved", data: "moved", render: (d, type) => type === "display" ? num(d, 3) : d },
        { title: esc(g.a_label), data: "a", orderable: false, searchable: false,
          render: (d, t, row) => side(d, "A", row.pred_a, row.score_a) },
        { title: "|A - B| of the inputs", data: "diff", orderable: false, searchable: false,
          render: (d) => d && d.file ? `<figure>${image(d.file, "difference", "eh-diff", "AB")}` +
            `<figcaption>${esc(d.caption)}</figcaption></figure>` : esc(d && d.caption) },
        { title: esc(g.b_label), data: "b", orderable: false, searchable: false,
          render: (d, t, row) => side(d, "B", row.pred_b, row.score_b) },
      ],
      createdRow: (tr, row) => { tr.dataset.sample = row.sample_id; tr.dataset.key = row.key; },
    });
    [dir, cls].forEach((el) => el && el.addEventListener("change", () => table.draw()));
    if (moved) moved.addEventListener("input", () => table.draw());
    return table;
  }

  window.ehReady = loadDataTables().then((mod) => {
    const DataTable = mod.default;
    document.querySelectorAll("table.eh-table").forEach((t) => {
      new DataTable(t, { pageLength: 25, order: [], autoWidth: false });
    });
    const data = document.getElementById("eh-gallery-data");
    if (data) window.ehGallery = gallery(DataTable, JSON.parse(data.textContent));
    document.body.dataset.tables = "ready";
    return true;
  }).catch((e) => {
    console.warn("tables stay static: " + e);
    document.body.dataset.tables = "static";
    return false;
  });
})();
