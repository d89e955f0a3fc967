import subprocess
import sys


def test_imports_without_torch():
    code = "import graph_passes, sys; assert 'torch' not in sys.modules, 'importing graph_passes imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
