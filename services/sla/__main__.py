from runtime.service import serve
from services.sla.bootstrap import MIGRATIONS, build_app
from services.sla.config import SlaSettings

if __name__ == "__main__":
    serve(SlaSettings(), build_app, MIGRATIONS)
