// MathJax 3 settings for the API reference: typeset only what pymdownx.arithmatex marked
// (<span|div class="arithmatex">\( ... \) / \[ ... \]</span|div>), nothing else on the page.
// MathJax itself (tex-svg-full.js: TeX input, SVG output, every TeX extension in one file, so
// nothing is loaded later) is copied into the site by docs/_hooks.py from the installed
// django-static-mathjax wheel: the pages need no network.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
    enableMenu: false,
  },
};
