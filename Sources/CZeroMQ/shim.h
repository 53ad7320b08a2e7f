// CZeroMQ: libzmq's C API (contexts, sockets, messages, polling, CURVE, ZAP).
#include <zmq.h>
