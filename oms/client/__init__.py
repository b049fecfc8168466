"""The strategy client library: commands to the service and its state followed live (Clone pattern).

`AsyncClient` for asyncio strategies, `Client` for blocking ones; both raise `ServiceError` (with the
service's stable error code) for a refused request and `ServiceUnavailable` when no service answers.
The wire contract they speak is docs/protocol.md. `ContractSpec` names an instrument with IB's contract
fields (a stock by its symbol alone; futures, options, forex as docs/protocol.md shows).
"""

from oms.client.async_client import AsyncClient
from oms.client.blocking import Client
from oms.client.transport import CurveKeys, read_endpoints
from oms.client.views import OrderDone
from oms.client.wire import ServiceError, ServiceNotRunning, ServiceUnavailable
from oms.ids import new_client_order_id
from oms.protocol import ContractSpec

__all__ = [
    "AsyncClient",
    "Client",
    "ContractSpec",
    "CurveKeys",
    "OrderDone",
    "ServiceError",
    "ServiceNotRunning",
    "ServiceUnavailable",
    "new_client_order_id",
    "read_endpoints",
]
