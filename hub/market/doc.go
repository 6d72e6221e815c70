// Package market prices rented capacity: unit prices per resource-hour, the
// quote for a job (its maximum cost, held before it runs), the metered cost
// of what actually ran, and the live pricing that moves unit prices with
// supply and demand. All arithmetic is exact on integers: a cost is the
// exact rational price × quantity × time, rounded down to the µSP (in the
// renter's favour), never a float.
//
// # Live pricing: a utilization controller per region
//
// Every ControllerConfig.Interval the hub samples, per region, the supply
// and demand of each priced resource (CPU, memory, disk):
//
//	capacity C = what the region's ready, eligible contributor nodes in the
//	             hub's node pool can allocate (their resources less what
//	             they reserve)
//	demand   D = what renters' running and pending allocations hold there,
//	             plus what their queued (not yet placed) allocations ask for
//
// and moves each unit price p toward the target utilization T:
//
//	u     = D / C                        (in basis points, rounded down; capped at
//	                                      MaxUtilizationBP; C = 0 and D > 0 is the cap)
//	step  = clamp(k · (u − T), −S, +S)   (basis points, k = GainBP, S = MaxStepBP)
//	p'    = clamp(p + p · step, floor, ceiling)
//
// where p · step is rounded toward zero but is at least 1 µSP when step is
// not zero (so that a small price still moves), and the bounds come from
// the operator's base price B of the region:
//
//	ceiling = B · CeilingBP
//	floor   = max(B · FloorBP, the cheapest CPU floor of the region's contributors)
//	          (CPU only: contributors state no other floor), at most the ceiling
//
// The contributors' floor bounds the price because below the cheapest
// contributor's floor no capacity of the region is offered: a lower price
// would quote renters something no contributor asked to be paid. The
// operator's ceiling still wins over it: it is the hub's promise to renters.
//
// With the defaults (T 70 %, k 0.5, S 10 %, floor = B, ceiling = 3 B) an
// idle region rests at its base price; demand above 70 % of capacity raises
// the price by up to 10 % per interval until it reaches three times the
// base; when the demand ends the price falls back by up to 10 % per
// interval to the base. A region with queued demand and no capacity at all
// rises by the full step. All arithmetic is on integers.
//
// Regions: the hub-wide price (region "") is driven by the whole hub's
// supply and demand, every node and job counted; a named region's price
// (node meta spiceroute_region) by its own nodes, the allocations on them
// and the queued allocations of jobs pinned to it. Jobs are quoted at the
// price of the region they pin, else at the hub-wide price.
//
// The operator and the controller: an operator who sets prices (PUT
// /api/prices) sets the region's base, and puts it in force at once; the
// controller then moves the price from there within the new bounds. The
// controller records a price only when it changes, with the utilization,
// demand and capacity that moved it, so the price history says why.
package market
