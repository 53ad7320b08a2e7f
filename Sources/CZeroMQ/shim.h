// CZeroMQ: libzmq's C API (contexts, sockets, messages, polling, CURVE, ZAP, monitors).
#include <zmq.h>
