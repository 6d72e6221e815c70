package ledger_test

import (
	"encoding/hex"
	"fmt"

	"github.com/spiceroute/spiceroute/hub/ledger"
)

// The leaf a committed transfer becomes in the transparency log.
func ExampleAppendTransferEntry() {
	debit, _ := ledger.ParseID("11111111-1111-4111-8111-111111111111")
	credit, _ := ledger.ParseID("22222222-2222-4222-8222-222222222222")
	id, _ := ledger.ParseID("33333333-3333-7333-8333-333333333333")
	t := ledger.Transfer{ID: id, DebitAccountID: debit, CreditAccountID: credit, Amount: 2_500_000, Code: 1, UserData: "job 7", Timestamp: 1_700_000_000_000_000_000}
	leaf := ledger.AppendTransferEntry(nil, &t)
	for _, field := range []struct {
		name string
		n    int
	}{{"version, type", 2}, {"id", 16}, {"debit", 16}, {"credit", 16}, {"amount", 8}, {"pending_id", 16}, {"timeout", 4}, {"code", 2}, {"flags", 2}, {"user_data", 6}, {"timestamp", 8}} {
		fmt.Printf("%-13s %s\n", field.name, hex.EncodeToString(leaf[:field.n]))
		leaf = leaf[field.n:]
	}
	fmt.Println("rest:", len(leaf))
	// Output:
	// version, type 0102
	// id            33333333333373338333333333333333
	// debit         11111111111141118111111111111111
	// credit        22222222222242228222222222222222
	// amount        00000000002625a0
	// pending_id    00000000000000000000000000000000
	// timeout       00000000
	// code          0001
	// flags         0000
	// user_data     056a6f622037
	// timestamp     17979cfe362a0000
	// rest: 0
}
