"""Build .dvc/plots/offline.html, the page `dvc plots show` fills (.dvc/config: plots.html_template), with Vega,
Vega-Lite and vega-embed inside it. DVC's own page loads them from a CDN, so without a network its charts stay
blank; this one needs nothing but the file. The libraries come from the npm registry (`npm pack`) at the versions
below, the majors DVC's page uses (its specs are Vega-Lite 5); their licences go beside the page.

python -m benchmarks.offline_plots   (needs npm and the registry; the result is committed)
"""

import argparse
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}  # BSD-3-Clause, all three
OUT = Path(__file__).resolve().parents[1] / ".dvc" / "plots"

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC plots</title>
    <!-- {versions} from the npm registry (BSD-3-Clause: .dvc/plots/LICENSE.*), inside the page so that it
         needs no network; built by benchmarks/offline_plots.py -->
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m benchmarks.offline_plots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    scripts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in PACKAGES.items():
            packed = subprocess.run(
                ["npm", "pack", "--silent", f"{name}@{version}"],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[-1]
            with tarfile.open(Path(tmp) / packed) as archive:
                code = archive.extractfile(f"package/build/{name}.min.js").read().decode()
                meta = json.load(archive.extractfile("package/package.json"))
                licence = (
                    archive.extractfile("package/LICENSE").read().decode()
                    if "package/LICENSE" in archive.getnames()
                    else f"{name} ships no licence file; its package.json says license {meta['license']}, "
                    f"author {meta['author']}, repository {meta['repository']}. The BSD-3-Clause terms are "
                    "written out in LICENSE.vega-lite (there with vega-lite's copyright line).\n"
                )
            (OUT / f"LICENSE.{name}").write_text(licence)
            if "</script" in code:
                raise SystemExit(f"{name}'s build holds '</script': it cannot be inlined as it is")
            scripts.append(f"    <script>\n{code}\n    </script>")
    versions = ", ".join(f"{name} {version}" for name, version in PACKAGES.items())
    (OUT / "offline.html").write_text(PAGE.format(versions=versions, scripts="\n".join(scripts)))
    print(f"{OUT / 'offline.html'}: {versions}")


if __name__ == "__main__":
    main()
