from libs.common.service import run
from services.router.app import build

run("router", build)
