/* GIS.GeoJSONTiles: a Leaflet GridLayer that draws the server's GeoJSON tiles
 * (/tiles/{id}/{z}/{x}/{y}.geojson) as vector features, so large layers are
 * never embedded in the page. Tiles outside [minZoom, maxZoom] are not asked
 * for (the server answers 404 outside a layer's zoom range). Polygons and
 * lines come clipped to each tile; points near a tile edge arrive in both
 * neighbours and are drawn once (by feature id). */
(function (root) {
  'use strict';
  var GIS = root.GIS = root.GIS || {};

  GIS.GeoJSONTiles = L.GridLayer.extend({
    initialize: function (url, opts) {
      L.GridLayer.prototype.initialize.call(this, {
        minZoom: opts.minZoom, maxZoom: 24, maxNativeZoom: opts.maxNativeZoom,
        updateWhenZooming: false, keepBuffer: 1
      });
      this._url = url;
      this._opts = opts;
      this._group = L.featureGroup();
      this._byTile = {};
      this._pointIds = {};
      this.loadedTiles = 0;
      this.failedTiles = 0;
      this.truncatedTiles = 0;
      this.on('tileunload', this._unload, this);
    },
    onAdd: function (map) {
      L.GridLayer.prototype.onAdd.call(this, map);
      this._group.addTo(map);
    },
    onRemove: function (map) {
      L.GridLayer.prototype.onRemove.call(this, map);
      map.removeLayer(this._group);
      this._group.clearLayers();
      this._byTile = {};
      this._pointIds = {};
    },
    /* With a GCJ-02 basemap the view is in GCJ-02 but tiles are cut in WGS84:
     * widen the tiles asked for by the shift at the view's centre (100-700 m
     * around Guangzhou) so no strip at the view's edge is left empty. */
    _getTiledPixelBounds: function (center) {
      var bounds = L.GridLayer.prototype._getTiledPixelBounds.call(this, center);
      if (GIS.datum !== 'gcj02') { return bounds; }
      var zoom = this._tileZoom;
      var shifted = root.GCJ02.toGcj(center.lng, center.lat);
      var pad = this._map.project(L.latLng(shifted[1], shifted[0]), zoom)
        .subtract(this._map.project(center, zoom));
      var margin = L.point(Math.abs(pad.x) + 1, Math.abs(pad.y) + 1);
      return L.bounds(bounds.min.subtract(margin), bounds.max.add(margin));
    },
    createTile: function (coords, done) {
      var tile = document.createElement('div');
      var key = this._tileCoordsToKey(coords);
      var self = this;
      var url = L.Util.template(this._url, { z: coords.z, x: coords.x, y: coords.y });
      this._byTile[key] = null;  // alive, not drawn yet
      fetch(url, { credentials: 'same-origin' }).then(function (r) {
        if (r.headers.get('X-Tile-Truncated')) { self.truncatedTiles++; }
        if (!r.ok) { throw new Error('tile ' + url + ': HTTP ' + r.status); }
        return r.json();
      }).then(function (fc) {
        if (key in self._byTile) { self._draw(key, fc); }
        self.loadedTiles++;
        done(null, tile);
      }).catch(function (err) {
        self.failedTiles++;
        done(err, tile);
      });
      return tile;
    },
    _draw: function (key, fc) {
      var ids = this._pointIds;
      var features = fc.features.filter(function (f) {
        if (!f.geometry || f.geometry.type !== 'Point' || f.id == null) { return true; }
        if (ids[f.id]) { return false; }
        ids[f.id] = key;
        return true;
      });
      var layer = L.geoJSON({ type: 'FeatureCollection', features: features },
        GIS.geojsonOptions(this._opts));
      this._byTile[key] = layer;
      this._group.addLayer(layer);
    },
    _unload: function (e) {
      var key = this._tileCoordsToKey(e.coords);
      var layer = this._byTile[key];
      delete this._byTile[key];
      if (!layer) { return; }
      this._group.removeLayer(layer);
      var ids = this._pointIds;
      Object.keys(ids).forEach(function (id) { if (ids[id] === key) { delete ids[id]; } });
    },
    /** Features drawn now (for tests and benchmarks). */
    featureCount: function () {
      var n = 0;
      this._group.eachLayer(function (l) { n += l.getLayers().length; });
      return n;
    },
    /** Whether no tile of the current view is still loading. */
    idle: function () { return this._noTilesToLoad(); }
  });

  GIS.geojsonTiles = function (id, url, opts) {
    var layer = new GIS.GeoJSONTiles(url, opts);
    GIS.layers[id] = layer;
    return layer;
  };
})(window);
