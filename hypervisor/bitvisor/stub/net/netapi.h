#ifndef BM_STUB_NETAPI_H
#define BM_STUB_NETAPI_H
#include <core/types.h>
typedef void net_recv_callback_t(void *handle, unsigned int num_packets, void **packets, unsigned int *packet_sizes, void *param, long *premap);
struct nicinfo {
	unsigned char mac_address[6];
	unsigned int mtu;
	unsigned long long int media_speed;
};
struct nicfunc {
	void (*get_nic_info)(void *handle, struct nicinfo *info);
	void (*send)(void *handle, unsigned int num_packets, void **packets, unsigned int *packet_sizes, bool print_ok);
	void (*set_recv_callback)(void *handle, net_recv_callback_t *callback, void *param);
	void (*poll)(void *handle);
};
struct netfunc {
	void *(*new_nic)(char *arg, void *param);
	bool (*init)(void *handle, void *phys_handle, struct nicfunc *phys_func, void *virt_handle, struct nicfunc *virt_func);
	void (*start)(void *handle);
	long (*premap_recvbuf)(void *handle, void *buf, unsigned int len);
};
void net_register(char *netname, struct netfunc *func, void *param);
#endif
