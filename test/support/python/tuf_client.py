"""The TUF reference client (python-tuf) against a served repository: refreshes from a trusted
root and downloads one target, printing one JSON line. Run by test/support/tuf.ts."""
import json
import os
import sys

from tuf.ngclient import Updater

base, trusted_root, target, workdir = sys.argv[1:5]
meta_dir = os.path.join(workdir, "metadata")
dl_dir = os.path.join(workdir, "downloads")
os.makedirs(meta_dir, exist_ok=True)
os.makedirs(dl_dir, exist_ok=True)
# The first run is bootstrapped with the given root; later runs trust what they stored.
bootstrap = None
if not os.path.exists(os.path.join(meta_dir, "root.json")):
    with open(trusted_root, "rb") as src:
        bootstrap = src.read()
try:
    updater = Updater(
        metadata_dir=meta_dir,
        metadata_base_url=f"{base}/metadata/",
        target_base_url=f"{base}/targets/",
        target_dir=dl_dir,
        bootstrap=bootstrap,
    )
    updater.refresh()
    info = updater.get_targetinfo(target)
    if info is None:
        print(json.dumps({"ok": True, "found": False}))
        sys.exit(0)
    path = updater.download_target(info)
    with open(path, "rb") as f:
        data = f.read()
    print(json.dumps({"ok": True, "found": True, "length": len(data), "custom": info.custom, "path": path}))
except Exception as e:  # the refusal's class is what the test asserts
    print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)[:300]}))
