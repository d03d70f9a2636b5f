-- One database per service (docker-compose; the local run creates them in devtools/run.py).
CREATE DATABASE gridline_intake;
CREATE DATABASE gridline_routing;
CREATE DATABASE gridline_sla;
CREATE DATABASE gridline_notify;
CREATE DATABASE gridline_projection;
