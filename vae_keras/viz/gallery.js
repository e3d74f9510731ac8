// The gallery's lightbox (vae_keras.viz.gallery inlines it into index.html): a click opens the picture
// over the page, Escape or a click closes it. Without JavaScript the plain link opens the file.
document.addEventListener("click", function (e) {
  var a = e.target.closest && e.target.closest("a.zoom");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  var small = a.querySelector("img"), box = document.createElement("div"), img = new Image();
  box.className = "lightbox"; box.setAttribute("role", "dialog"); box.setAttribute("aria-modal", "true");
  box.setAttribute("aria-label", small.alt + " (click or press Escape to close)");
  img.src = a.getAttribute("href"); img.alt = small.alt; img.className = small.className;
  box.appendChild(img); box.tabIndex = -1;
  box.addEventListener("click", function () { box.remove(); a.focus(); });
  document.body.appendChild(box); box.focus();
});
document.addEventListener("keydown", function (e) {
  if (e.key === "Escape") document.querySelectorAll(".lightbox").forEach(function (b) { b.remove(); });
});
