from libs.common.service import run
from services.sla.app import build

run("sla", build)
