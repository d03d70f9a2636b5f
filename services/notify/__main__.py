from runtime.service import serve
from services.notify.bootstrap import MIGRATIONS, build_app
from services.notify.config import NotifySettings

if __name__ == "__main__":
    serve(NotifySettings(), build_app, MIGRATIONS)
