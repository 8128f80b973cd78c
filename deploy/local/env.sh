# Connection settings of the local infrastructure, sourced by infra.sh, with-infra.sh and the Makefile.
# Every variable can be set beforehand to point the tests and the local mesh elsewhere.
export IM_LOCAL_ETCD_PORT=${IM_LOCAL_ETCD_PORT:-2379}
export IM_LOCAL_KAFKA_PORT=${IM_LOCAL_KAFKA_PORT:-9092}
export IM_LOCAL_MYSQL_PORT=${IM_LOCAL_MYSQL_PORT:-3306}
export IM_LOCAL_REDIS_PORT=${IM_LOCAL_REDIS_PORT:-6379}
export IM_ETCD_ENDPOINTS=${IM_ETCD_ENDPOINTS:-http://127.0.0.1:$IM_LOCAL_ETCD_PORT}
export IM_MYSQL_URL=${IM_MYSQL_URL:-mysql://im_service:im_service_password@127.0.0.1:$IM_LOCAL_MYSQL_PORT/im_chat}
export IM_REDIS_URL=${IM_REDIS_URL:-redis://127.0.0.1:$IM_LOCAL_REDIS_PORT/0}
export IM_KAFKA_BROKERS=${IM_KAFKA_BROKERS:-127.0.0.1:$IM_LOCAL_KAFKA_PORT}
