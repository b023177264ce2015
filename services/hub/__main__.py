from libs.common.service import run
from services.hub.app import build

run("hub", build)
