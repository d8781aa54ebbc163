// The widget manager (served from _static/widgets, see book/fetch_assets.py) finds its fonts
// relative to its own AMD module id: map that id to where the files really are.
require.config({
  paths: {"@jupyter-widgets/html-manager/dist": new URL("widgets", document.currentScript.src).href}
});

// The widget manager typesets its labels with MathJax 2's `MathJax.Hub.Queue`; the site serves
// MathJax 3, which has no Hub. Give every MathJax object (the configuration now, MathJax 3 once it
// loads and replaces it) a Hub whose Queue typesets with MathJax 3.
(function () {
  var current = window.MathJax;
  var hub = {
    Queue: function (job) {
      var element = Array.isArray(job) ? job[2] : undefined;
      var mj = current;
      if (mj && mj.startup && mj.startup.promise && mj.typesetPromise) {
        mj.startup.promise.then(function () { return mj.typesetPromise(element ? [element] : undefined); })
          .catch(function () {});
      }
    }
  };
  function withHub(value) {
    if (value && typeof value === "object" && !value.Hub) {
      try { Object.defineProperty(value, "Hub", {value: hub, enumerable: false}); } catch (e) {}
    }
    return value;
  }
  current = withHub(current || {});
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = withHub(value); }
  });
})();
