from libs.common.service import run
from services.outbound.app import build

run("outbound", build)
