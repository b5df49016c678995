/* WGS84 <-> GCJ-02 on the page: a port of ingest/crs.py (wgs84_to_gcj02 and
 * its fixed-point inverse) for data drawn from tiles when the basemap is a
 * GCJ-02 provider (AMap/Gaode). Keep the constants in step with ingest/crs.py;
 * tests/test_maps_units.py compares both on sample points. */
(function (root) {
  'use strict';
  var A = 6378245.0;
  var EE = 0.00669342162296594323;
  var BOUNDS = [72.004, 0.8293, 137.8347, 55.8271];
  var STEPS = 6;
  var PI = Math.PI;

  function offsets(lon, lat) {
    var x = lon - 105.0, y = lat - 35.0;
    var common = (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    var dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y +
      0.2 * Math.sqrt(Math.abs(x)) + common +
      (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0 +
      (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    var dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y +
      0.1 * Math.sqrt(Math.abs(x)) + common +
      (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0 +
      (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    var radlat = lat / 180.0 * PI;
    var magic = 1.0 - EE * Math.pow(Math.sin(radlat), 2);
    var sqrtmagic = Math.sqrt(magic);
    dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrtmagic) * PI);
    dlon = (dlon * 180.0) / (A / sqrtmagic * Math.cos(radlat) * PI);
    return [dlon, dlat];
  }

  function inChina(lon, lat) {
    return lon >= BOUNDS[0] && lon <= BOUNDS[2] && lat >= BOUNDS[1] && lat <= BOUNDS[3];
  }

  /** [lon, lat] WGS84 -> [lon, lat] GCJ-02 */
  function toGcj(lon, lat) {
    if (!inChina(lon, lat)) { return [lon, lat]; }
    var d = offsets(lon, lat);
    return [lon + d[0], lat + d[1]];
  }

  /** [lon, lat] GCJ-02 -> [lon, lat] WGS84 (fixed-point iteration) */
  function toWgs(lon, lat) {
    var g = [lon, lat];
    for (var i = 0; i < STEPS; i++) {
      var s = toGcj(g[0], g[1]);
      g = [g[0] - (s[0] - lon), g[1] - (s[1] - lat)];
    }
    return g;
  }

  root.GCJ02 = { toGcj: toGcj, toWgs: toWgs };
})(window);
