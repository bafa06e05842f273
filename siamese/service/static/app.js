// The page of `python -m siamese.serve`: no library, no network but this service.
"use strict";
const $ = (id) => document.getElementById(id);
let info = null;

function fmt(x) { return Number(x).toFixed(4); }

function wire(inputId, dropId, previewId, onChange) {
  const input = $(inputId), drop = $(dropId);
  input.addEventListener("change", () => {
    const f = input.files[0];
    if (f) { $(previewId).src = URL.createObjectURL(f); }
    onChange();
  });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
}

async function post(url, form) {
  const r = await fetch(url, { method: "POST", body: form });
  const body = await r.json();
  if (!r.ok) { throw new Error(body.error || ("HTTP " + r.status)); }
  return body;
}

function showScale(score) {
  // The score on a scale from 0 to a maximum that holds both it and twice the threshold;
  // the side of the threshold where pairs are "same" is green.
  const t = info.threshold, hi = info.higher_is_similar;
  const max = Math.max(2 * Math.abs(t), score * 1.1, hi ? 1 : 0) || 1;
  const pos = (v) => Math.min(100, Math.max(0, 100 * v / max)) + "%";
  const bar = $("scale-bar");
  bar.style.setProperty("--left", hi ? "#f3c4c4" : "#bfe6cc");
  bar.style.setProperty("--right", hi ? "#bfe6cc" : "#f3c4c4");
  $("scale-threshold").style.left = pos(t);
  $("scale-score").style.left = pos(score);
  $("scale-min").textContent = "0";
  $("scale-max").textContent = fmt(max);
  $("scale-t").textContent = "threshold " + fmt(t);
  $("scale-t").style.left = pos(t);
  $("scale").hidden = false;
}

async function verify() {
  const form = new FormData();
  form.append("left", $("left").files[0]);
  form.append("right", $("right").files[0]);
  const v = $("verdict");
  v.className = ""; v.textContent = "comparing…";
  try {
    const r = await post("/v1/verify", form);
    v.className = r.same ? "same" : "different";
    v.textContent = (r.same ? "same" : "different") + " (" + r.score_name + " " + fmt(r.score) +
      (r.higher_is_similar ? ", same when ≥ " : ", same when ≤ ") + fmt(r.threshold) + ")";
    v.dataset.score = r.score;
    showScale(r.score);
  } catch (e) {
    v.className = "error"; v.textContent = "error: " + e.message;
  }
}

async function identify() {
  const form = new FormData();
  form.append("image", $("probe").files[0]);
  const out = $("identity"), list = $("candidates");
  out.className = ""; out.textContent = "searching…"; list.innerHTML = "";
  try {
    const r = await post("/v1/identify?top_k=5", form);
    out.className = r.known ? "same" : "unknown";
    out.textContent = r.known ? r.identity : "unknown (no identity within the threshold)";
    for (const c of r.top) {
      const li = document.createElement("li");
      if (r.known && c.identity === r.identity) { li.className = "accepted"; }
      const img = document.createElement("img");
      img.src = "/v1/gallery/" + encodeURIComponent(c.identity) + "/thumbnail";
      img.alt = c.identity;
      const text = document.createElement("span");
      text.textContent = c.identity + "  " + fmt(c.score);
      li.append(img, text);
      list.append(li);
    }
  } catch (e) {
    out.className = "error"; out.textContent = "error: " + e.message;
  }
}

async function start() {
  info = await (await fetch("/v1/info")).json();
  $("info").textContent = "export " + info.export + " (" + info.kind + ", " + info.runtime +
    "), images " + info.image_size.join("x") + ", " + info.score_name + " threshold " +
    fmt(info.threshold) + (info.gallery ? ", gallery of " +
    Object.keys(info.gallery.identities).length + " identities" : "");
  const ready = () => { $("verify-button").disabled = !($("left").files.length && $("right").files.length); };
  wire("left", "drop-left", "left-preview", ready);
  wire("right", "drop-right", "right-preview", ready);
  $("verify-button").addEventListener("click", verify);
  if (info.gallery) {
    $("identify").hidden = false;
    wire("probe", "drop-probe", "probe-preview", () => { $("identify-button").disabled = !$("probe").files.length; });
    $("identify-button").addEventListener("click", identify);
  }
  document.body.dataset.ready = "1";
}

start();
