from runtime.service import serve
from services.intake.bootstrap import MIGRATIONS, build_app
from services.intake.config import IntakeSettings

if __name__ == "__main__":
    serve(IntakeSettings(), build_app, MIGRATIONS)
