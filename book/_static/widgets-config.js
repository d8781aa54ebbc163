// The widget manager (served from _static/widgets, see book/fetch_assets.py) finds its fonts
// relative to its own AMD module id: map that id to where the files really are.
require.config({
  paths: {"@jupyter-widgets/html-manager/dist": new URL("widgets", document.currentScript.src).href}
});
