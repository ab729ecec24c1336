"""medattr's DICOM outputs in a real viewer: OHIF, on Orthanc, in headless Chromium.

OHIF Viewer's prebuilt ``dist/`` (npm ``@ohif/app``, pinned in ``.ci/ohif``) is served on a
loopback port by a small static server that also proxies ``/dicom-web`` to a test Orthanc,
so the viewer and its DICOMweb server share one origin. Chromium (the Debian build, driven by
Playwright, which downloads nothing) opens the study; the test loads the RGB overlay series,
the Parametric Map (fused over the CT by OHIF) and the SEG, and checks the screenshot pixels:
coloured where the strongest attribution is, plain grey at the same places one slice mirror
image away (a flipped series would colour those). Everything stays on 127.0.0.1 and every
process it starts is stopped.

``MEDATTR_SCREENSHOT_DIR=docs/images`` refreshes the pictures in ``docs/dicom.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from medattr.io import (
    AlgorithmInfo,
    read_dicom_series,
    write_dicom_parametric_map,
    write_dicom_rgb,
    write_dicom_seg,
)
from medattr.models import ModelSpec
from medattr.preprocess import Preprocessor
from tests.io.conftest import CHROMIUM_FLAGS as HEADLESS_FLAGS

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # the fixture fails (CI) or skips (elsewhere) with a clear message
    PlaywrightError = Exception  # type: ignore[assignment,misc]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
#: Where ``npm ci --prefix .ci/ohif`` puts OHIF's prebuilt viewer (``MEDATTR_OHIF_DIST`` overrides).
OHIF_DIST = ROOT / ".ci" / "ohif" / "node_modules" / "@ohif" / "app" / "dist"

CHROMIUM_FLAGS = [
    *HEADLESS_FLAGS,
    # WebGL in software (SwiftShader): OHIF's volume viewports (PMAP fusion, SEG) need it
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


def app_config(origin: str) -> str:
    """OHIF's ``app-config.js``: one DICOMweb data source, the same origin's ``/dicom-web``."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "orthanc",
        "configuration": {
            "friendlyName": "test Orthanc (loopback)",
            "name": "orthanc",
            "wadoUriRoot": f"{origin}/dicom-web",
            "qidoRoot": f"{origin}/dicom-web",
            "wadoRoot": f"{origin}/dicom-web",
            "qidoSupportsIncludeField": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": False,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "orthanc",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=1)};\n"


class OhifServer:
    """OHIF's static files and a ``/dicom-web`` proxy to Orthanc, on one loopback origin."""

    def __init__(self, dist: Path, port: int, orthanc_url: str) -> None:
        self.origin = f"http://127.0.0.1:{port}"
        config = app_config(self.origin).encode()
        dist = dist.resolve()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                # cross-origin isolation lets cornerstone use SharedArrayBuffer
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                self.send_header("Cross-Origin-Resource-Policy", "same-origin")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                forward = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("accept", "content-type", "range")
                }
                req = urllib.request.Request(
                    orthanc_url + self.path, data=data, headers=forward, method=self.command
                )
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        body, status, headers = r.read(), r.status, dict(r.headers.items())
                except urllib.error.HTTPError as e:
                    body, status, headers = e.read(), e.code, dict(e.headers.items())
                keep = {k: v for k, v in headers.items() if k.lower() == "content-type"}
                self._send(status, body, keep)

            def _static(self) -> None:
                path = self.path.split("?", 1)[0].split("#", 1)[0]
                if path == "/app-config.js":
                    self._send(200, config, {"Content-Type": CONTENT_TYPES[".js"]})
                    return
                target = (dist / path.lstrip("/")).resolve()
                if dist not in target.parents or not target.is_file():
                    if Path(path).suffix:  # a missing asset
                        self._send(404, b"not found", {"Content-Type": "text/plain"})
                        return
                    target = dist / "index.html"  # a route of the single-page app
                ctype = CONTENT_TYPES.get(target.suffix, "application/octet-stream")
                self._send(200, target.read_bytes(), {"Content-Type": ctype})

            def do_GET(self) -> None:
                if self.path.startswith("/dicom-web/"):
                    self._proxy()
                else:
                    self._static()

            do_HEAD = do_GET

            def do_POST(self) -> None:
                if self.path.startswith("/dicom-web/"):
                    self._proxy()
                else:
                    self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"", {})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def ohif_dist(synth) -> Path:
    """The prebuilt viewer; missing fails under CI and skips elsewhere."""
    dist = Path(os.environ.get("MEDATTR_OHIF_DIST", OHIF_DIST))
    if not (dist / "index.html").is_file():
        synth.missing(f"OHIF viewer not installed at {dist} (npm ci --prefix .ci/ohif)")
    return dist


def chromium(synth) -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return synth.tool("chromium")


# --- the study: a fine-grid CT and an attribution mapped up from a coarse model grid ----------

#: LPS mm: the positive blob sits on the phantom's lesion, a weaker negative one elsewhere; both
#: off-centre in every axis, so a flip in any axis moves them somewhere else.
NEGATIVE_LPS = np.array([-30.0, 10.0, 8.0])


def _study(root: Path, synth) -> SimpleNamespace:
    """A 0.9 mm x 0.9 mm x 1.25 mm CT series (with its own 40/400 window) and the outputs.

    The attribution is made on a 4 mm model grid (a positive Gaussian on the lesion, a weaker
    negative one) and mapped to the source grid with the smooth mapping, as the viewer outputs
    should be.
    """
    spec = synth.SeriesSpec(rows=150, cols=160, n=32, spacing=(0.9, 0.9), step=1.25)
    paths = synth.write_series(root / "src", spec, description="Phantom chest 1.25 mm")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.save_as(path, enforce_file_format=True)
    volume = read_dicom_series(root / "src")
    pre = Preprocessor(ModelSpec(pixdim=(4.0, 4.0, 4.0), spatial_size=(40, 40, 12)))
    model = pre(volume)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in (40, 40, 12)], indexing="ij"), -1)
    world_ras = grid @ model.affine[:3, :3].T + model.affine[:3, 3]
    flip = np.array([-1.0, -1.0, 1.0])  # LPS <-> RAS

    def blob(center_lps: np.ndarray, sigma: float) -> np.ndarray:
        d2 = np.sum((world_ras - center_lps * flip) ** 2, axis=-1)
        return np.exp(-d2 / (2 * sigma**2))

    on_model = blob(synth.lesion_lps, 5.0) - 0.6 * blob(NEGATIVE_LPS, 5.0)
    on_model = torch.as_tensor(on_model, dtype=torch.float32)[None] * model.valid[0]
    attribution = pre.attribution_to_source(on_model, model, mapping="smooth")[0]
    alg = AlgorithmInfo("integrated_gradients", "blur(10mm)", "class 1 logit")
    out = root / "out"
    rgb = write_dicom_rgb(volume, attribution, out, algorithm=alg)
    pm, negative = write_dicom_parametric_map(volume, attribution, out, algorithm=alg)
    [seg] = write_dicom_seg(volume, attribution, out, algorithm=alg, top_percent=0.2)
    return SimpleNamespace(
        volume=volume,
        attribution=attribution,
        source=paths,
        rgb=rgb,
        pm=pm,
        negative=negative,
        seg=seg,
        study_uid=volume.source.dicom.study_instance_uid,
    )


def _lps(volume, ijk: np.ndarray) -> np.ndarray:
    """LPS mm of voxel indices ``(..., 3)``."""
    ras = ijk @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    return ras * np.array([-1.0, -1.0, 1.0])


def _checkpoints(study: SimpleNamespace, sign: float = 1.0, k: int = 40) -> SimpleNamespace:
    """Where the viewer must colour, and mirror images of those places where it must not.

    ``hot``: the ``k`` strongest voxels (of ``sign * attribution``) of the slice holding the
    peak. ``mirrored_slice``: the same in-plane places on the slice mirrored along the
    normal; ``mirrored_plane``: the hot slice's places mirrored left-right. The attribution
    is checked to be negligible there.
    """
    a = sign * study.attribution
    peak = np.unravel_index(int(np.argmax(a)), a.shape)
    z = int(peak[2])
    plane = a[:, :, z]
    order = np.argsort(plane, axis=None)[::-1][:k]
    ij = np.stack(np.unravel_index(order, plane.shape), -1)
    n_i, _, n_k = a.shape
    hot = np.column_stack([ij, np.full(len(ij), z)])
    mirrored_slice = np.column_stack([ij, np.full(len(ij), n_k - 1 - z)])
    mirrored_plane = np.column_stack([n_i - 1 - ij[:, 0], ij[:, 1], np.full(len(ij), z)])
    for far in (mirrored_slice, mirrored_plane):  # the test means something
        assert np.abs(a[tuple(far.T)]).max() < 0.01 * np.abs(a).max()
    assert a[tuple(hot.T)].min() > 0.5 * a.max()
    return SimpleNamespace(
        hot=_lps(study.volume, hot.astype(float)),
        mirrored_slice=_lps(study.volume, mirrored_slice.astype(float)),
        mirrored_plane=_lps(study.volume, mirrored_plane.astype(float)),
    )


# --- driving the viewer ----------------------------------------------------------------------

_GOTO_SLICE = """async ([x, y, z]) => {
  const cs = window.cornerstone;
  const vp = cs.getEnabledElements()[0].viewport;
  const cam = vp.getCamera();
  const n = cam.viewPlaneNormal;
  const along = (p) => (p[0] - x) * n[0] + (p[1] - y) * n[1] + (p[2] - z) * n[2];
  if (vp.type === 'stack') {
    const ids = vp.getImageIds();
    let best = 0;
    ids.forEach((id, i) => {
      const p = cs.metaData.get('imagePlaneModule', id).imagePositionPatient;
      const q = cs.metaData.get('imagePlaneModule', ids[best]).imagePositionPatient;
      if (Math.abs(along(p)) < Math.abs(along(q))) best = i;
    });
    await vp.setImageIdIndex(best);
  } else {
    const f = cam.focalPoint, pos = cam.position, d = -along(f);
    vp.setCamera({
      focalPoint: [f[0] + d * n[0], f[1] + d * n[1], f[2] + d * n[2]],
      position: [pos[0] + d * n[0], pos[1] + d * n[1], pos[2] + d * n[2]],
    });
  }
  const rendered = new Promise((resolve) => {
    vp.element.addEventListener('CORNERSTONE_IMAGE_RENDERED', resolve, {once: true});
    setTimeout(resolve, 15000);
  });
  vp.render();
  await rendered;
  const now = vp.getCamera().focalPoint;
  return vp.type === 'stack'
    ? along(cs.metaData.get('imagePlaneModule', vp.getCurrentImageId()).imagePositionPatient)
    : along(now);
}"""

_TO_SCREEN = """(points) => {
  const vp = window.cornerstone.getEnabledElements()[0].viewport;
  const r = vp.canvas.getBoundingClientRect();
  return points.map((p) => {
    const c = vp.worldToCanvas(p);
    return [r.left + c[0], r.top + c[1]];
  });
}"""

_VIEWPORT_STATE = """() => {
  const cs = window.cornerstone;
  const e = cs && cs.getEnabledElements();
  if (!e || !e.length) return null;
  const vp = e[0].viewport;
  const volumes = cs.cache.getVolumes();
  return {type: vp.type, actors: vp.getActors().length,
          loaded: volumes.every((v) => !v.loadStatus || v.loadStatus.loaded),
          segmentations: window.services.segmentationService.getSegmentations().length};
}"""


class Viewer:
    """One OHIF page on the study; ``show(label)`` double-clicks a series in the study panel."""

    def __init__(self, context, origin: str, study_uid: str, shots: Path) -> None:
        self.page = context.new_page()
        self.page.set_default_timeout(120_000)
        self.shots = shots
        self.errors: list[str] = []
        self.elsewhere: list[str] = []  # requests that would leave the loopback origin
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith((origin + "/", "data:", "blob:"))
                else self.elsewhere.append(r.url)
            ),
        )
        self.page.goto(f"{origin}/viewer?StudyInstanceUIDs={study_uid}")
        self.page.wait_for_function(f"({_VIEWPORT_STATE})() !== null")
        skip = self.page.get_by_text("Skip all")  # the first-visit tour
        with contextlib.suppress(PlaywrightError):
            skip.first.click(timeout=10_000)

    def show(self, label: str, ready: str) -> None:
        """Load the series whose thumbnail reads ``label``; wait until JS ``ready(state)``."""
        self.page.get_by_text(label).first.dblclick()
        with contextlib.suppress(PlaywrightError):  # SEG: "open this segmentation?"
            self.page.get_by_role("button", name="Yes").first.click(timeout=15_000)
        state = f"({_VIEWPORT_STATE})()"
        self.page.wait_for_function(f"(({ready}))({state}) && ({state}).loaded")
        time.sleep(1)

    def shot_at(self, lps: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Screenshot with the slice through ``lps[0]`` shown; the screen pixels of ``lps``."""
        off = self.page.evaluate(_GOTO_SLICE, [float(v) for v in lps[0]])
        assert abs(off) < 0.05, f"the viewer shows a slice {off:.2f} mm away"
        time.sleep(0.5)
        xy = np.asarray(self.page.evaluate(_TO_SCREEN, lps.tolist()), float)
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        img = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return img, xy


def _coloured(img: np.ndarray, xy: np.ndarray, chroma: int = 40) -> np.ndarray:
    """Whether each screen point is coloured (the CT itself is grey): median of 3 x 3."""
    out = []
    for x, y in np.rint(xy).astype(int):
        patch = img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3)
        out.append(np.median(patch.max(axis=1) - patch.min(axis=1)) > chroma)
    return np.asarray(out)


@pytest.fixture(scope="module")
def viewer_session(tmp_path_factory, synth):
    """The study in a test Orthanc behind OHIF's origin, and a headless Chromium."""
    synth.module("dicomweb_client")
    playwright_api = synth.module("playwright.sync_api")
    dist = ohif_dist(synth)
    exe = chromium(synth)
    root = tmp_path_factory.mktemp("ohif")
    study = _study(root, synth)
    port = synth.free_port()
    orthanc = synth.OrthancServer(root / "orthanc", public_host=f"127.0.0.1:{port}")
    server = None
    try:
        from dicomweb_client.api import DICOMwebClient

        files = [*study.source, *study.rgb, study.pm, study.negative, study.seg]
        DICOMwebClient(url=f"{orthanc.url}/dicom-web").store_instances(
            [pydicom.dcmread(p) for p in files]
        )
        server = OhifServer(dist, port, orthanc.url)
        with playwright_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(root / "chromium-profile"),  # a fresh profile
                executable_path=exe,
                headless=True,
                args=[f for f in CHROMIUM_FLAGS if f != "--headless"],
                viewport={"width": 1280, "height": 800},
            )
            try:
                yield SimpleNamespace(
                    study=study,
                    points=_checkpoints(study),
                    negative_points=_checkpoints(study, sign=-1.0),
                    context=context,
                    origin=server.origin,
                    shots=root,
                )
            finally:
                context.close()
    finally:
        if server is not None:
            server.stop()
        orthanc.stop()


def _check_overlay(session, label: str, ready: str, name: str, points=None) -> None:
    viewer = Viewer(session.context, session.origin, session.study.study_uid, session.shots)
    try:
        viewer.show(label, ready)
        p = session.points if points is None else points
        img, xy = viewer.shot_at(p.hot, name)
        h, w = img.shape[:2]
        assert ((xy >= 0) & (xy < [w, h])).all(), "the hot voxels are off screen"
        hot = _coloured(img, xy)
        assert hot.mean() >= 0.9, f"{name}: {hot.sum()} of {hot.size} hot voxels coloured"
        flipped = _coloured(img, viewer.shot_at(p.mirrored_plane, f"{name}_lr")[1])
        assert flipped.mean() <= 0.1, f"{name}: left-right mirror image coloured"
        img_m, xy_m = viewer.shot_at(p.mirrored_slice, f"{name}_mirrored")
        mirrored = _coloured(img_m, xy_m)
        assert mirrored.mean() <= 0.1, f"{name}: mirrored slice coloured at {mirrored.sum()}"
        assert not viewer.errors, viewer.errors
        assert not viewer.elsewhere, f"requests off the loopback origin: {viewer.elsewhere}"
        target = os.environ.get("MEDATTR_SCREENSHOT_DIR")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(session.shots / f"{name}.png", Path(target) / f"{name}.png")
    finally:
        viewer.page.close()


def test_rgb_overlay_shows_where_the_attribution_is(viewer_session):
    _check_overlay(viewer_session, "RGB overlay", "s => s.type === 'stack'", "ohif_rgb_overlay")


def test_parametric_map_shows_where_the_attribution_is(viewer_session):
    ready = "s => s.type !== 'stack' && s.actors >= 2"  # the CT and the map, fused
    _check_overlay(viewer_session, "Param map integrated", ready, "ohif_parametric_map")


def test_map_of_the_evidence_against_shows_the_negative_attribution(viewer_session):
    """OHIF shows only positive map values: the second map carries the negative evidence."""
    ready = "s => s.type !== 'stack' && s.actors >= 2"
    _check_overlay(
        viewer_session,
        "Param map against",
        ready,
        "ohif_parametric_map_against",
        viewer_session.negative_points,
    )


def test_segmentation_shows_where_the_attribution_is(viewer_session):
    _check_overlay(viewer_session, "SEG top", "s => s.segmentations > 0", "ohif_segmentation")
