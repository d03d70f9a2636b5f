from runtime.service import serve
from services.projection.bootstrap import MIGRATIONS, build_app
from services.projection.config import ProjectionSettings

if __name__ == "__main__":
    serve(ProjectionSettings(), build_app, MIGRATIONS)
