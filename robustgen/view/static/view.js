// The recipe explorer: moving the slider or a picker re-renders the image and the applied record.
(function () {
  const form = document.getElementById("explore");
  if (!form) return;
  const img = document.querySelector("img[data-role=degraded]");
  const pre = document.querySelector("pre[data-role=record]");
  const out = document.querySelector("output[data-role=severity-value]");
  let pending = null;
  function update() {
    const params = new URLSearchParams(new FormData(form));
    out.textContent = Number(params.get("severity")).toFixed(2);
    history.replaceState(null, "", "/explore?" + params);
    if (pending) pending.abort();
    pending = new AbortController();
    fetch("/explore/record?" + params, { signal: pending.signal })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((text) => {
        pre.textContent = text; // as the server wrote it: parsing would round the 64-bit noise seed
        img.src = "/explore/image?" + params;
      })
      .catch(() => {});
  }
  form.addEventListener("input", update);
  form.addEventListener("submit", (e) => { e.preventDefault(); update(); });
})();
