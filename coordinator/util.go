package coordinator

import "encoding/json"

type jsonRaw = json.RawMessage

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
