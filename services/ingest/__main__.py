from libs.common.service import run
from services.ingest.app import build

run("ingest", build)
