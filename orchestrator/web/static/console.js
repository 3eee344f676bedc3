// pgmaint console: local times, copy buttons, charts (uPlot, vendored). No other script runs.
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });

  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = fmt.format(d); }   // the UTC text stays in title
    });
  }

  function copyButtons() {
    document.querySelectorAll("button.copy[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var text = document.getElementById(btn.getAttribute("data-copy")).textContent;
        var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); }
        else { var t = document.createElement("textarea"); t.value = text; document.body.appendChild(t); t.select();
               document.execCommand("copy"); document.body.removeChild(t); done(); }
      });
    });
  }

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  var LEVEL_COLORS = ["#2e7d32", "#3060a8", "#7b5ea7", "#b26a00", "#c62828"];

  function sparklines() {
    var series = readJSON("health-series");
    if (!series || typeof uPlot === "undefined") { return; }
    document.querySelectorAll(".spark[data-check]").forEach(function (el) {
      var s = series[el.getAttribute("data-check")];
      if (!s || !s.t.length) { el.classList.add("empty"); el.title = "no recorded history"; return; }
      var worst = Math.max.apply(null, s.level);
      var opts = {
        width: el.clientWidth || 220, height: el.clientHeight || 40, legend: { show: false }, cursor: { show: false },
        scales: { x: { time: true }, y: { range: [-0.3, 4.3] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, { stroke: LEVEL_COLORS[worst] || "#677086", width: 1.5, fill: "rgba(120,130,150,0.12)",
                       paths: uPlot.paths.stepped({ align: 1 }), points: { show: s.t.length < 3 } }]
      };
      new uPlot(opts, [s.t, s.level], el);
      el.title = s.t.length + " slices; worst " + ["ok", "info", "unknown", "warning", "critical"][worst];
    });
  }

  function backupChart() {
    var s = readJSON("backup-series");
    var el = document.getElementById("backup-chart");
    if (!s || !el || !s.t.length || typeof uPlot === "undefined") { return; }
    var opts = {
      width: el.clientWidth || 800, height: 240,
      scales: { x: { time: true }, mb: { auto: true }, s: { auto: true } },
      series: [{}, { label: "size (MB)", scale: "mb", stroke: "#2451a6", width: 2, points: { show: true } },
               { label: "duration (s)", scale: "s", stroke: "#b26a00", width: 2, dash: [6, 4], points: { show: true } }],
      axes: [{}, { scale: "mb", label: "MB" }, { scale: "s", side: 1, label: "s", grid: { show: false } }]
    };
    new uPlot(opts, [s.t, s.mb, s.seconds], el);
  }

  function bars() {
    document.querySelectorAll(".bar[data-share]").forEach(function (el) {
      el.style.width = Math.max(1, Math.min(100, parseFloat(el.getAttribute("data-share")) || 0)) + "px";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(); copyButtons(); sparklines(); backupChart(); bars();
  });
})();
