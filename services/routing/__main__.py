from runtime.service import serve
from services.routing.bootstrap import MIGRATIONS, build_app
from services.routing.config import RoutingSettings

if __name__ == "__main__":
    serve(RoutingSettings(), build_app, MIGRATIONS)
