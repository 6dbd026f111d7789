"""Look at fmlab's HTML reports in headless Chromium: screenshots and layout checks.

    python tools/report_check.py RUNS_DIR [--out DIR] [--width 1400 --width 1920]

Finds every ``report.html``, ``index.html`` and sweep page under RUNS_DIR (a ``fmlab
reproduce --out`` folder), loads each at every width in Debian's headless ``chromium``,
and for each page and width

* measures **horizontal overflow**: how far the page scrolls sideways
  (``scrollWidth - clientWidth`` of the document) and how far any element sticks out of
  the page's column (a table wider than its card, a figure wider than the page);
* collects **console errors** (uncaught exceptions, ``console.error``, resources that
  failed to load);
* measures the **smallest figure scale**: a figure's displayed width over its pixel
  width, as the size a 10 pt label (15 px at the figures' 110 dpi) is drawn at;
* writes a full-page **screenshot** ``<study>-<run_id>-<width>.png`` under ``--out``.

It prints one line per page and width and exits 1 when a page overflows, logs an error
or draws figure text smaller than ``--min-font`` px. The page is copied to a temporary
file with a small script prepended that does the measuring (the report itself is not
changed); Chromium runs with ``--no-sandbox`` (as root in containers) and no network.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
LABEL_PX = 10 / 72 * 110  # a 10 pt figure label at fmlab's figure dpi (110), in PNG pixels
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--mute-audio",
    "--allow-file-access-from-files",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",  # offline: nothing leaves the machine
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=4000",
)

PROBE = """<script>(function(){
var errors=[];
window.addEventListener('error',function(e){var t=e.target||{};
 errors.push(e.message||('failed to load '+(t.src||t.href||t.tagName)).slice(0,200));},true);
window.addEventListener('unhandledrejection',function(e){errors.push('rejection: '+e.reason);});
var ce=console.error;console.error=function(){errors.push([].slice.call(arguments).join(' '));
 return ce.apply(console,arguments);};
function who(el){var t=(el.textContent||'').trim().slice(0,60);
 return el.tagName.toLowerCase()+(el.className?'.'+String(el.className).split(' ')[0]:'')+
 (t?' "'+t+'"':'');}
window.addEventListener('load',function(){setTimeout(function(){
 var d=document.documentElement,main=document.querySelector('main')||document.body;
 var r=main.getBoundingClientRect(),cs=getComputedStyle(main);
 var right=r.right-parseFloat(cs.paddingRight||0),worst=0,where='';
 main.querySelectorAll('*').forEach(function(el){var b=el.getBoundingClientRect();
  if(b.width>0&&b.right-right>worst){worst=b.right-right;where=who(el);}});
 var scale=null;
 main.querySelectorAll('figure img').forEach(function(img){if(!img.naturalWidth)return;
  var s=img.getBoundingClientRect().width/img.naturalWidth;
  if(scale===null||s<scale)scale=s;});
 var out=document.createElement('pre');out.id='fmlab-check';out.hidden=true;
 out.textContent=JSON.stringify({page_overflow:d.scrollWidth-d.clientWidth,
  element_overflow:Math.round(worst),element:where,errors:errors,
  height:Math.ceil(d.scrollHeight),figure_scale:scale});
 document.body.appendChild(out);},50);});
})();</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def find_pages(root: Path) -> list[Path]:
    """Every report page under ``root``: run reports, indexes, sweep pages, comparisons."""
    pages = [p for p in root.rglob("*.html") if not any(s.startswith(".") for s in p.parts)]
    return sorted(pages)


def _probe_copy(page: Path, directory: Path) -> Path:
    """The page with the measuring script first in <head>, beside the original (so that
    relative links and images resolve the same)."""
    text = page.read_text(encoding="utf-8")
    probed = re.sub(r"<head>", "<head>" + PROBE, text, count=1)
    if probed == text:
        probed = PROBE + text
    fd, name = tempfile.mkstemp(prefix=".fmlab-check-", suffix=".html", dir=page.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(probed)
    return Path(name)


def _chromium(browser: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run Chromium once; on a timeout its whole process group (renderer, GPU and zygote
    processes too) is killed and ``TimeoutError`` raised."""
    import signal

    with tempfile.TemporaryDirectory(prefix="fmlab-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise TimeoutError(f"chromium took over {timeout:.0f} s") from None
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def check_page(page: Path, width: int, browser: str, height: int = 1000) -> dict:
    """Load ``page`` at ``width`` px; return the measures (see the module docstring)."""
    copy = _probe_copy(page, page.parent)
    try:
        done = _chromium(browser, f"--window-size={width},{height}", "--dump-dom",
                         copy.resolve().as_uri())  # fmt: skip
        stdout, stderr = done.stdout, done.stderr
    except TimeoutError as e:
        stdout, stderr = "", str(e)
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(r'<pre id="fmlab-check" hidden="">(.*?)</pre>', stdout, re.S)
    if not found:
        tail = (stderr or "").strip().splitlines()[-3:]
        return {"page": str(page), "width": width, "errors": [f"no measure: {tail}"],
                "page_overflow": None, "element_overflow": None, "height": height,
                "figure_scale": None, "element": ""}  # fmt: skip
    result = json.loads(html.unescape(found.group(1)))
    return {"page": str(page), "width": width, **result}


def screenshot(page: Path, width: int, height: int, target: Path, browser: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    height = max(600, min(int(height), 16000))
    _chromium(browser, f"--window-size={width},{height}", f"--screenshot={target.resolve()}",
              page.resolve().as_uri())  # fmt: skip
    return target


def problems(result: dict, min_font: float) -> list[str]:
    out = []
    if result["page_overflow"] is None:
        out.append("page could not be measured")
    elif result["page_overflow"] > 0:
        out.append(f"page scrolls sideways by {result['page_overflow']} px")
    if (result["element_overflow"] or 0) > 1:
        out.append(f"{result['element']} sticks out {result['element_overflow']} px")
    out += [f"console: {e}" for e in result.get("errors", [])]
    scale = result.get("figure_scale")
    if scale is not None and scale * LABEL_PX < min_font:
        out.append(f"figure labels drawn at {scale * LABEL_PX:.1f} px (< {min_font})")
    return out


def _name(page: Path, root: Path) -> str:
    rel = page.relative_to(root).with_suffix("")
    return "-".join(p for p in rel.parts if p not in ("report",)) or "index"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder of runs (fmlab reproduce --out)")
    ap.add_argument("--out", type=Path, default=None, help="screenshots here (default: none)")
    ap.add_argument("--width", type=int, action="append", help="viewport widths (1400, 1920)")
    ap.add_argument("--min-font", type=float, default=8.0, help="smallest figure label, px")
    ap.add_argument("--json", action="store_true", help="print the measures as JSON")
    args = ap.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("error: no chromium found (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    if not args.root.is_dir():
        print(f"error: {args.root} is not a folder", file=sys.stderr)
        return 2
    pages = find_pages(args.root)
    if not pages:
        print(f"error: no .html pages under {args.root}", file=sys.stderr)
        return 2
    results, failed = [], 0
    for page in pages:
        for width in args.width or [1400, 1920]:
            r = check_page(page, width, browser)
            if args.out is not None:
                shot = args.out / f"{_name(page, args.root)}-{width}.png"
                try:
                    r["screenshot"] = str(screenshot(page, width, r["height"], shot, browser))
                except TimeoutError as e:
                    r["errors"] = [*r.get("errors", []), f"screenshot: {e}"]
            r["problems"] = problems(r, args.min_font)
            failed += bool(r["problems"])
            results.append(r)
            if not args.json:
                scale = r.get("figure_scale")
                font = f"{scale * LABEL_PX:.1f} px" if scale is not None else "–"
                state = "; ".join(r["problems"]) or "ok"
                over = f"{r['page_overflow']}/{r['element_overflow']} px"
                print(f"{width:>5} {page.relative_to(args.root)}: overflow {over}, "
                      f"labels {font}: {state}")  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{len(results) - failed} of {len(results)} page views ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
