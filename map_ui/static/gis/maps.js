/* Shared behaviour of the map pages (map_ui): styling by property, popups,
 * inline GeoJSON layers, zoom-to from the side lists, box downloads.
 * Everything hangs off window.GIS so tests and benchmarks can inspect it. */
(function (root) {
  'use strict';
  var GIS = root.GIS = root.GIS || {};
  GIS.datum = 'wgs84';
  GIS.layers = {};
  GIS.labels = {};

  GIS.configure = function (opts) {
    GIS.datum = opts.datum || 'wgs84';
    GIS.labels = opts.labels || {};
    GIS.map = opts.map;
  };

  /** GeoJSON [lon, lat] -> LatLng, shifted to GCJ-02 when the basemap needs it. */
  GIS.coordsToLatLng = function (c) {
    if (GIS.datum === 'gcj02') {
      var p = root.GCJ02.toGcj(c[0], c[1]);
      return L.latLng(p[1], p[0]);
    }
    return L.latLng(c[1], c[0]);
  };

  function escapeHtml(v) {
    return String(v).replace(/[&<>"']/g, function (ch) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch];
    });
  }
  GIS.escapeHtml = escapeHtml;

  /** A path style function from a layer's style hints (layers.base.Style). */
  GIS.styleFn = function (s) {
    return function (feature) {
      var p = (feature && feature.properties) || {};
      var color = s.color;
      if (s.colorBy && s.palette && p[s.colorBy] != null && s.palette[p[s.colorBy]]) {
        color = s.palette[p[s.colorBy]];
      }
      var fill = s.colorBy && s.palette && s.palette[p[s.colorBy]] ? color
        : (s.fillColor || color);
      return {
        color: s.colorBy ? color : s.color, weight: s.weight, fillColor: fill,
        fillOpacity: s.fillOpacity != null ? s.fillOpacity : 0.45,
        opacity: s.opacity != null ? s.opacity : 0.9
      };
    };
  };

  GIS.pointFn = function (s) {
    var style = GIS.styleFn(s);
    return function (feature, latlng) {
      var st = style(feature);
      var n = feature.properties && feature.properties.point_count;
      st.radius = n > 1 ? Math.min(6 + 3 * Math.log(n), 24) : s.radius;
      st.fillOpacity = 0.8;
      var m = L.circleMarker(latlng, st);
      if (n > 1) { m.bindTooltip(String(n), { permanent: false }); }
      return m;
    };
  };

  /** Popup HTML: a server-made `_popup` if present, else a property table. */
  GIS.popupHtml = function (props, titles) {
    if (props._popup) { return props._popup; }
    var rows = [];
    Object.keys(props).forEach(function (k) {
      var v = props[k];
      if (v == null || v === '' || k.charAt(0) === '_') { return; }
      if (typeof v === 'object') { v = JSON.stringify(v); }
      rows.push('<tr><th>' + escapeHtml((titles && titles[k]) || k) + '</th><td>' +
        escapeHtml(v) + '</td></tr>');
    });
    return '<table class="gis-popup">' + rows.join('') + '</table>';
  };

  /** Options of L.geoJSON shared by inline layers and tile layers. */
  GIS.geojsonOptions = function (opts) {
    var filter = opts.filter;
    return {
      style: GIS.styleFn(opts.style),
      pointToLayer: GIS.pointFn(opts.style),
      coordsToLatLng: GIS.coordsToLatLng,
      filter: filter ? function (f) {
        var p = f.properties || {};
        return Object.keys(filter).every(function (k) {
          return filter[k].indexOf(p[k]) >= 0;
        });
      } : null,
      onEachFeature: function (f, layer) {
        layer.bindPopup(function () {
          return GIS.popupHtml(f.properties || {}, opts.titles);
        }, { maxWidth: 420 });
      }
    };
  };

  /** An inline (embedded) GeoJSON layer, registered under `id`; its
   * coordinates are already in the page's datum (map_ui.gcj). */
  GIS.geojsonLayer = function (id, data, opts) {
    var options = GIS.geojsonOptions(opts);
    options.coordsToLatLng = L.GeoJSON.coordsToLatLng;  // shifted by the server
    var layer = L.geoJSON(data, options);
    layer.featureCount = function () { return layer.getLayers().length; };
    GIS.layers[id] = layer;
    return layer;
  };

  /** Zoom to the bounds stored on a list row ([[s, w], [n, e]], page datum). */
  GIS.zoomTo = function (el) {
    var b = JSON.parse(el.getAttribute('data-bounds'));
    var prev = document.querySelectorAll('.gis-selected');
    for (var i = 0; i < prev.length; i++) { prev[i].classList.remove('gis-selected'); }
    el.classList.add('gis-selected');
    GIS.lastZoom = b;
    var layerId = el.getAttribute('data-layer');
    var opened = false;
    function openFeature() {
      if (opened || !layerId) { return; }
      opened = true;
      var found = GIS.findFeature(layerId, el.getAttribute('data-prop'),
        el.getAttribute('data-value'));
      if (found) { found.openPopup(); }
    }
    // listen first: without animation fitBounds fires moveend at once
    GIS.map.once('moveend', openFeature);
    GIS.map.fitBounds(b, { maxZoom: 18, padding: [30, 30] });
    setTimeout(openFeature, 600);  // the view did not move (already there)
  };

  /** The drawn feature of layer `layerId` whose property `prop` (or id) is `value`. */
  GIS.findFeature = function (layerId, prop, value) {
    var layer = GIS.layers[layerId];
    if (!layer) { return null; }
    var found = null;
    function visit(l) {
      if (found) { return; }
      if (l.feature) {
        var v = prop ? (l.feature.properties || {})[prop] : l.feature.id;
        if (String(v) === String(value)) { found = l; }
      } else if (l.eachLayer) {
        l.eachLayer(visit);
      }
    }
    visit(layer._group || layer);
    return found;
  };

  /** After a box is drawn, offer GeoJSON / CSV / GeoPackage of a layer in it. */
  GIS.boxDownloads = function (map, panelId, opts) {
    var panel = document.getElementById(panelId);
    var select = panel.querySelector('select');
    var links = panel.querySelector('.gis-links');
    var box = null;
    function render() {
      if (!box) { links.innerHTML = escapeHtml(opts.hint); return; }
      var bbox = box.map(function (v) { return v.toFixed(6); }).join(',');
      var base = opts.base + '/collections/' + encodeURIComponent(select.value) +
        '/items?bbox=' + bbox;
      links.innerHTML = opts.formats.map(function (f) {
        var extra = f[0] === 'json' ? '&limit=' + opts.jsonLimit : '';
        return '<a class="gis-download" data-format="' + f[0] + '" href="' + base +
          '&f=' + f[0] + extra + '">' + escapeHtml(f[1]) + '</a>';
      }).join(' ');
      panel.setAttribute('data-bbox', bbox);
    }
    select.addEventListener('change', render);
    map.on('draw:created', function (e) {
      var b = e.layer.getBounds();
      var sw = [b.getWest(), b.getSouth()], ne = [b.getEast(), b.getNorth()];
      if (GIS.datum === 'gcj02') {  // the drawn box is in the basemap's datum
        sw = root.GCJ02.toWgs(sw[0], sw[1]);
        ne = root.GCJ02.toWgs(ne[0], ne[1]);
      }
      box = [sw[0], sw[1], ne[0], ne[1]];
      render();
    });
    render();
  };
})(window);
