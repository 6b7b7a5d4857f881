// Switchboard console: draws the overview's charts (uPlot) from the JSON the page carries.
// The uPlot instances are kept on window.sbCharts (the browser tests read their data).
(function () {
  "use strict";
  var palette = ["#2357c6", "#c6232e", "#1d7a3a", "#c69a23", "#7b3fc6", "#1f8fa3", "#a34a1f", "#5b6470", "#999"];

  function stacked(series, metric) {
    // Cumulative sums, so each series is drawn on top of the ones before it.
    var out = [];
    var running = null;
    series.forEach(function (s) {
      var values = s[metric];
      running = running ? running.map(function (v, i) { return v + values[i]; }) : values.slice();
      out.push(running);
    });
    return out;
  }

  function money(u, splits) {
    return splits.map(function (v) {
      if (v === 0) return "$0";
      return "$" + (Math.abs(v) < 0.01 ? v.toExponential(1) : v.toFixed(2));
    });
  }

  function draw(el, data, metric) {
    var width = Math.max(el.clientWidth || 420, 300);
    var opts = {
      width: width,
      height: 220,
      scales: { x: { time: true } },
      series: [{}].concat(data.series.map(function (s, i) {
        var color = palette[i % palette.length];
        return { label: s.label, stroke: color, fill: color + "33", width: 1.5 };
      })),
      axes: [{}, { size: 70, values: metric === "cost" ? money : null }],
    };
    if (!data.series.length) {
      opts.series.push({ label: "no usage", stroke: "#999" });
      return new uPlot(opts, [data.days, data.days.map(function () { return 0; })], el);
    }
    return new uPlot(opts, [data.days].concat(stacked(data.series, metric)), el);
  }

  function init() {
    var source = document.getElementById("overview-data");
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    window.sbCharts = {};
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var metric = el.getAttribute("data-chart");
      window.sbCharts[metric] = draw(el, data, metric);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
